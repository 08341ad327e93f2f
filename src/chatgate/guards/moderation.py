"""An offline moderation classifier over OpenAI's 13 categories, by weighted rules.

Each category has phrase patterns with weights (how sure a match makes us); a text's score for a
category is ``1 - prod(1 - w)`` over the patterns that match, so independent signals add up
without passing 1. A sub-category lifts its parent (a threat is also harassment). A category is
flagged when its score reaches the threshold (0.5 by default).

This is a rule system, not a trained model: it is fast (tens of microseconds a kilobyte), never
downloads anything and explains itself; its precision and recall on the labelled set shipped with
the tests are measured by ``python -m bench guards``. Point ``guards.moderation`` at an upstream
moderation model for a learned classifier.
"""

from __future__ import annotations

import re

from chatgate.guards.verdict import MODERATION_CATEGORIES, Verdict

__all__ = ["RuleModerator"]

_GROUP_WORDS = (
    "immigrant immigrants refugee refugees muslim muslims jew jews jewish christian christians "
    "hindu hindus black blacks white whites asian asians arab arabs mexican mexicans gay gays "
    "lesbian lesbians trans transgender women disabled"
)
_GROUPS = (
    r"(?:immigrants?|refugees|muslims?|jews?|jewish people|christians?|hindus?|blacks?|"
    r"black people|whites?|white people|asians?|arabs?|mexicans?|gays?|gay people|lesbians?|"
    r"trans people|transgender people|women|disabled people|the disabled)"
)
_DEHUMANISE = (
    r"(?:animals|vermin|subhuman|inferior|parasites|cockroaches|rats|disease|filth|savages|"
    r"a plague|not human|don't deserve rights|should not (?:be allowed to )?(?:vote|exist|live))"
)
_INSULT = (
    r"(?:idiot|stupid|moron|loser|worthless|pathetic|disgusting|ugly|dumb|trash|garbage|pig|"
    r"imbecile|scum|waste of (?:space|oxygen)|piece of (?:shit|garbage|trash))"
)
_HARM = r"(?:kill|hurt|beat|stab|shoot|murder|strangle|choke|break your|destroy|end) "
_DRUGS = r"(?:meth|methamphetamine|cocaine|crack|heroin|fentanyl|lsd|mdma)"
_WEAPONS = (
    r"(?:bomb|pipe bomb|explosives?|grenade|molotov|napalm|ghost gun|silencer|suppressor|"
    r"untraceable (?:gun|firearm)|automatic (?:rifle|weapon)|nerve agent|ricin|sarin)"
)
_MINOR = (
    r"(?:child|children|kid|kids|minor|minors|underage|under-age|preteen|pre-teen|"
    r"(?:1[0-7]|[5-9])[- ]year[- ]old|schoolgirl|schoolboy|young (?:girl|boy)|teenager)"
)
_SEXUAL = (
    r"(?:sex(?:ual)? (?:act|acts|intercourse|content|scene|roleplay|role-play)|have sex|"
    r"porn(?:ography|ographic)?|explicit (?:sex|sexual|photos|pictures|images)|nudes?|naked|"
    r"orgasm|erotic|masturbat\w*|blowjob|genitals|sext(?:ing)?|onlyfans|strip for)"
)

# (category, weight, trigger words, pattern): a pattern runs only when the text holds one of
# its trigger words (a set lookup), and matches the lower-cased text.
_RULES: tuple[tuple[str, float, str, str], ...] = (
    ("harassment", 0.85, "you you're youre your",
     rf"\byou(?:'re| are|r)? (?:so |such )?(?:an? |a total |a complete )?{_INSULT}\b"),
    ("harassment", 0.45, "idiot stupid moron loser worthless pathetic disgusting ugly dumb trash garbage pig imbecile scum waste piece",
     rf"\b{_INSULT}\b"),
    ("harassment", 0.7, "shut hell nobody suck loser everyone fuck f*ck kill country",
     r"\b(?:shut up|go to hell|nobody (?:likes|loves|wants) you|you suck|"
                        r"get lost,? loser|everyone hates you|f\*?u?ck (?:you|off)|"
                        r"(?:you should|go) kill yourself|go back to your country)\b"),
    ("harassment/threatening", 0.9, "kill hurt beat stab shoot murder strangle choke break destroy end",
     rf"\bi(?:'m| am)? (?:going to|gonna|will|'ll) {_HARM}\w* ?you"),
    ("harassment/threatening", 0.8, "know watch dead die next pay regret",
     r"\b(?:i know where you live|watch your back|you(?:'re| are) "
                                    r"(?:dead|going to die|next)|you will (?:pay|regret|die))\b"),
    ("hate", 0.85, _GROUP_WORDS,
     rf"\b(?:all |those |these |the )?{_GROUPS} (?:are|is) (?:an? )?{_DEHUMANISE}"),
    ("hate", 0.6, "subhuman inferior racial master country",
     r"\b(?:subhuman|inferior race|racial purity|master race|go back to your country)\b"),
    ("hate/threatening", 0.9, _GROUP_WORDS,
     rf"\b(?:kill|exterminate|eradicate|wipe out|gas|lynch|hang|shoot) "
                              rf"(?:(?:all|the|those|every) ){{0,2}}{_GROUPS}\b"),
    ("illicit", 0.85, "shoplift steal launder laundering evade pick hack break hotwire phish counterfeit forge smuggle bypass sell",
     r"\b(?:how (?:do i|to|can i|could i|would i)|teach me to|help me|ways to|"
                      r"steps to|guide to|best way to)\b[^.?!]{0,40}\b(?:shoplift|steal|"
                      r"launder money|money laundering|evade (?:taxes|tax)|pick a lock|hack into|"
                      r"break into|hotwire|phish|counterfeit|forge|smuggle|"
                      r"bypass (?:a |the )?(?:alarm|security|paywall|breathalyzer)|"
                      r"sell (?:drugs|stolen))"),
    ("illicit", 0.85, "meth methamphetamine cocaine crack heroin fentanyl lsd mdma",
     rf"\b(?:make|cook|synthesi[sz]e|produce|grow|buy|get)\b[^.?!]{{0,20}}\b{_DRUGS}\b"),
    ("illicit/violent", 0.9, "bomb explosive explosives grenade molotov napalm ghost silencer suppressor untraceable automatic nerve ricin sarin",
     rf"\b(?:how (?:do i|to|can i)|where (?:can|do) i|help me|steps to|"
                             rf"instructions (?:for|to))\b[^.?!]{{0,40}}\b(?:make|build|buy|get|"
                             rf"assemble|print|acquire)\b[^.?!]{{0,20}}\b{_WEAPONS}"),
    ("illicit/violent", 0.7, "hitman poison",
     r"\b(?:hire a hitman|poison (?:my|someone|him|her)|"
                             r"untraceable poison)\b"),
    ("self-harm", 0.65, "suicide suicidal self harm cutting kill end starve hurt overdose",
     r"\b(?:suicide|suicidal|self[- ]harm|cutting myself|kill myself|"
                        r"end my life|starve myself|hurt myself|overdose)\b"),
    ("self-harm/intent", 0.9, "kill killing end ending die hurt hurting cut cutting commit committing starve starving",
     r"\bi(?:'m| am)? (?:want to|going to|gonna|will|plan(?:ning)? to|"
                              r"thinking (?:about|of)) (?:kill(?:ing)? myself|end(?:ing)? "
                              r"(?:it all|my life)|die|hurt(?:ing)? myself|cut(?:ting)? myself|"
                              r"commit(?:ting)? suicide|starv(?:e|ing) myself)\b"),
    ("self-harm/intent", 0.8, "live alive exist",
     r"\bi (?:don't|do not) want to (?:live|be alive|exist) anymore\b"),
    ("self-harm/instructions", 0.9, "kill commit end cut overdose",
     r"\b(?:how (?:to|do i|can i)|best way to|ways to|"
                                    r"easiest way to|painless way to)\b[^.?!]{0,20}\b(?:kill "
                                    r"(?:yourself|myself)|commit suicide|end (?:your|my) life|"
                                    r"cut (?:yourself|myself)|overdose)\b"),
    ("self-harm/instructions", 0.6, "kill kys",
     r"\b(?:you should|go) kill yourself\b|\bkys\b"),
    ("sexual", 0.75, "sex sexual porn pornography pornographic explicit nude nudes naked orgasm erotic blowjob genitals sext sexting onlyfans strip masturbate masturbation masturbating",
     rf"\b{_SEXUAL}\b"),
    ("sexual/minors", 0.95, "sex sexual porn pornography pornographic explicit nude nudes naked orgasm erotic blowjob genitals sext sexting onlyfans strip masturbate masturbation masturbating",
     rf"\b{_SEXUAL}\b[^.?!]{{0,60}}\b{_MINOR}\b|\b{_MINOR}\b[^.?!]{{0,60}}\b{_SEXUAL}\b"),
    ("violence", 0.7, "kill murder stab shoot behead torture slaughter massacre execute",
     r"\b(?:kill|murder|stab|shoot|behead|torture|slaughter|massacre|execute) "
                      r"(?:him|her|them|people|someone|everyone|the (?:hostages|crowd))\b"),
    ("violence", 0.6, "bloodbath shooting mass beat blow",
     r"\b(?:bloodbath|shooting spree|mass shooting|beat (?:him|her|them) to death|"
                      r"blow (?:it|them|the building) up)\b"),
    ("violence/graphic", 0.85, "gore gory dismember dismembered dismembering disembowel disemboweled entrails intestines severed blood skull",
     r"\b(?:gore|gory|dismember(?:ed|ing)?|disembowel(?:ed|ing)?|"
                               r"entrails|intestines spilling|severed (?:head|limbs?|fingers?)|"
                               r"blood (?:everywhere|spurting|gushing)|skull (?:cracked|crushed))\b"),
)  # fmt: skip

_WORD = re.compile(r"[a-z0-9*']+")

_PARENT = {
    "harassment/threatening": "harassment",
    "hate/threatening": "hate",
    "illicit/violent": "illicit",
    "self-harm/intent": "self-harm",
    "self-harm/instructions": "self-harm",
    "sexual/minors": "sexual",
    "violence/graphic": "violence",
}
_IMPLIED = {"harassment/threatening": "violence", "hate/threatening": "violence"}
"""A threat of harm is also violent content (as OpenAI's classifier scores it)."""


class RuleModerator:
    """Scores text on OpenAI's 13 categories by the rules above."""

    def __init__(self, threshold: float = 0.5):
        self.threshold = threshold
        self._rules = [(c, w, frozenset(t.split()), re.compile(p)) for c, w, t, p in _RULES]

    def classify(self, text: str) -> Verdict:
        lowered = text.lower()
        words = set(_WORD.findall(lowered))
        misses = dict.fromkeys(MODERATION_CATEGORIES, 1.0)
        for category, weight, triggers, pattern in self._rules:
            if not triggers.isdisjoint(words) and pattern.search(lowered):
                misses[category] *= 1.0 - weight
        scores = {name: round(1.0 - miss, 6) for name, miss in misses.items()}
        for implied in (_PARENT, _IMPLIED):
            for child, parent in implied.items():
                scores[parent] = max(scores[parent], round(scores[child] * 0.9, 6))
        return Verdict(
            "moderation",
            scores,
            {name: score >= self.threshold for name, score in scores.items()},
        )
