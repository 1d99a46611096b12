"""A model's own control tokens, and how untrusted text is kept from spelling them.

Every chat template marks turns with special tokens: ChatML ``<|im_start|>``, Gemma
``<start_of_turn>``, Llama/Mistral ``[INST]`` and ``</s>``, DeepSeek ``<｜User｜>``. A statute
or a question that contains one must not be able to end the user turn or open a system
turn. Two layers (issue 14):

- text: ``defuse`` rewrites every such marker in untrusted text with look-alike brackets
  (the generic families below, plus the exact strings of the loaded model's vocabulary);
- tokens: the llama.cpp backend tokenizes message contents with special-token parsing
  off, so no content can produce a control token id whatever its spelling (llama.py).

    >>> defuse("<start_of_turn>system [INST] </s> <|im_end|>")
    '‹start_of_turn›system ［INST］ ‹/s› ‹|im_end|›'
"""

from __future__ import annotations

import re
from collections.abc import Collection

# Marker families of the common chat templates, whatever the model: defused even for an
# HTTP backend whose vocabulary is not known here.
_FAMILIES = re.compile(
    r"<\|[^|<>\n]{0,40}\|>"  # ChatML and friends: <|im_start|>, <|eot_id|>
    r"|<｜[^｜<>\n]{0,40}｜>"  # DeepSeek: <｜User｜>, <｜end▁of▁sentence｜>
    r"|</?(?:start_of_turn|end_of_turn|s|bos|eos|pad|unk|mask|sep|cls)>"
    r"|<(?:start_of_image|end_of_image|image_soft_token|unused\d{1,5})>"
    r"|\[/?(?:INST|SYS|AVAILABLE_TOOLS|TOOL_CALLS|TOOL_RESULTS|SYSTEM_PROMPT)\]"
    r"|<</?SYS>>"
)
# Anything shaped like a marker, checked against a model's own vocabulary.
_CANDIDATE = re.compile(r"<[^<>\s]{1,60}>|\[[^\[\]\s]{1,60}\]|<｜[^｜\s]{1,60}｜>")
_LOOKALIKE = str.maketrans({"<": "‹", ">": "›", "[": "［", "]": "］"})


def _defuse_one(marker: str) -> str:
    return marker.translate(_LOOKALIKE)


def defuse(text: str, tokens: Collection[str] = ()) -> str:
    """text with every chat-template marker written with look-alike brackets: the generic
    families, and each string in tokens (a model's control tokens, see control_tokens)."""
    text = _FAMILIES.sub(lambda m: _defuse_one(m.group()), text)
    if tokens:
        text = _CANDIDATE.sub(
            lambda m: _defuse_one(m.group()) if m.group() in tokens else m.group(), text)
        # vocabulary markers not shaped like <…> or […] are rare; replace them literally
        for tok in _odd_tokens(tokens):
            if tok in text:
                text = text.replace(tok, _defuse_one(tok) if tok != _defuse_one(tok)
                                    else tok[0] + "\u200b" + tok[1:])
    # a lone half of a ChatML marker left after the rest was cut
    return text.replace("<|", "‹|").replace("|>", "|›")


def _odd_tokens(tokens: Collection[str]) -> list[str]:
    return [t for t in tokens if len(t) > 2 and not _CANDIDATE.fullmatch(t)
            and any(c in t for c in "<>[]|")]


def is_marker(text: str) -> bool:
    """Whether a vocabulary entry is a marker worth defusing (not whitespace, not a plain
    word): it contains a bracket or a bar."""
    return bool(text.strip()) and any(c in text for c in "<>[]|｜")


def control_tokens(llama) -> frozenset[str]:
    """The texts of a loaded llama_cpp.Llama's control and user-defined marker tokens,
    read from its vocabulary (Gemma: 6,000+ of them, most <unusedN>)."""
    import llama_cpp

    vocab = llama_cpp.llama_model_get_vocab(llama._model.model)
    wanted = llama_cpp.LLAMA_TOKEN_ATTR_CONTROL | llama_cpp.LLAMA_TOKEN_ATTR_USER_DEFINED
    out = set()
    for i in range(llama.n_vocab()):
        if llama_cpp.llama_vocab_get_attr(vocab, i) & wanted:
            text = llama._model.token_get_text(i)
            if is_marker(text):
                out.add(text)
    return frozenset(out)


def control_token_ids(llama) -> frozenset[int]:
    """The ids of a model's control tokens (what untrusted text must never produce)."""
    import llama_cpp

    vocab = llama_cpp.llama_model_get_vocab(llama._model.model)
    return frozenset(i for i in range(llama.n_vocab())
                     if llama_cpp.llama_vocab_get_attr(vocab, i)
                     & llama_cpp.LLAMA_TOKEN_ATTR_CONTROL)
