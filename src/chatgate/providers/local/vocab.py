"""A GGUF model's tokenizer and chat template, without its weights (llama.cpp loads the
vocabulary only: milliseconds and a few MB): counts a chat request's prompt exactly as an engine
serving that file does (llama.cpp's server, llama-cpp-python's, Ollama)."""

from __future__ import annotations

from pathlib import Path

import llama_cpp
from llama_cpp._internals import LlamaModel

from chatgate.protocol import ChatCompletionRequest
from chatgate.providers.local.cpu import quiet_llama_log
from chatgate.providers.local.template import ChatTemplate

__all__ = ["GgufVocab", "prompt_ids"]


def prompt_ids(model: LlamaModel, text: str) -> list[int]:
    """A rendered prompt's tokens: the model's BOS first where it uses one (unless the template
    already wrote it), special tokens parsed."""
    add_bos = bool(model.add_bos_token())
    bos = model.token_get_text(model.token_bos()) if add_bos else ""
    if bos and text.startswith(bos):
        add_bos = False
    return list(model.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True))


class GgufVocab:
    def __init__(self, path: Path):
        quiet_llama_log()
        params = llama_cpp.llama_model_default_params()
        params.vocab_only = True
        self._model = LlamaModel(path_model=str(path), params=params, verbose=True)
        metadata = dict(self._model.metadata())
        template = metadata.get("tokenizer.chat_template")
        if not template:
            raise ValueError(f"{path} has no chat template")
        self._template = ChatTemplate(
            template,
            bos_token=self._model.token_get_text(self._model.token_bos()),
            eos_token=self._model.token_get_text(self._model.token_eos()),
        )
        architecture = metadata.get("general.architecture", "")
        trained = metadata.get(f"{architecture}.context_length")
        self.n_ctx_train = int(trained) if trained and trained.isdigit() else None
        """The context the model was trained for (an engine may serve it with less)."""

    def tokenize(self, text: str) -> list[int]:
        return prompt_ids(self._model, text)

    def text_tokens(self, text: str) -> list[int]:
        """A plain text's tokens, with no beginning-of-sequence token (an answer's text)."""
        return list(self._model.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def chat_tokens(self, request: ChatCompletionRequest) -> list[int]:
        """The prompt's tokens as the model's chat template renders it."""
        return self.tokenize(self._template.render(request))

    def prompt_tokens(self, request: ChatCompletionRequest) -> int:
        """The prompt's tokens as the model's chat template renders it."""
        return len(self.chat_tokens(request))
