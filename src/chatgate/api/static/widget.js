/* chatgate widget: being built (issue 15). Runs inside the /widget.js bundle with `core` in scope. */
