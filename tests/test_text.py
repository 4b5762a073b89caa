"""Tokenization: languages, casing, punctuation, settings round trip, processes."""

from __future__ import annotations

import importlib.util

import pytest

from owntrain.config import DEFAULTS
from owntrain.errors import InputError, LanguageError
from owntrain.text import TextSettings, available_languages, load_tokenizer, tokenize


def toks(text: str, **settings) -> list[str]:
    return next(tokenize([text], TextSettings(**settings)))


def test_settings_defaults_come_from_config():
    s = TextSettings()
    assert (s.lang, s.lowercase, s.keep_punct) == (DEFAULTS.lang, DEFAULTS.lowercase, DEFAULTS.keep_punct)


def test_settings_round_trip_and_normalised_code():
    s = TextSettings(lang=" DE ", lowercase=False, keep_punct=True)
    assert s.lang == "de"
    assert TextSettings.from_dict(s.to_dict()) == s
    assert TextSettings.from_dict({}) == TextSettings()


def test_settings_refuse_unknown_keys():
    with pytest.raises(InputError, match="Unknown TextSettings setting.*casefold"):
        TextSettings.from_dict({"lang": "en", "casefold": True})


def test_english_drops_punctuation_keeps_numbers():
    assert toks("This film was GREAT!! 10/10 -- 3 stars, really.") == [
        "this", "film", "was", "great", "10/10", "3", "stars", "really",
    ]


def test_keep_punct_and_case():
    assert toks("Great film!", keep_punct=True, lowercase=False) == ["Great", "film", "!"]


def test_whitespace_tokens_always_dropped():
    assert toks("a  \n\n  b", keep_punct=True) == ["a", "b"]


def test_german_umlauts_sharp_s_and_compounds():
    got = toks("Die Straße ist GROSS, ÄRGER über Öl! Fußballweltmeisterschaft Haus-Tür z.B. 3,5", lang="de")
    assert got == [
        "die", "straße", "ist", "gross", "ärger", "über", "öl",
        "fußballweltmeisterschaft", "haus-tür", "z.b.", "3,5",
    ]


def test_sharp_s_documented_choice():
    # str.lower keeps ß (casefold would give "ss"); the capital ẞ becomes ß; STRASSE stays apart.
    assert toks("Straße STRASSE ẞ", lang="de") == ["straße", "strasse", "ß"]


def test_french_elisions():
    assert toks("L'homme qu'il aime, aujourd'hui c'est l'été!", lang="fr") == [
        "l'", "homme", "qu'", "il", "aime", "aujourd'hui", "c'", "est", "l'", "été",
    ]


def test_french_typographic_apostrophe_is_a_different_token():
    # spaCy splits the elision but keeps U+2019: "l’" and "l'" are different tokens.
    assert toks("l’homme qu’il", lang="fr") == ["l’", "homme", "qu’", "il"]


def test_chinese_character_segmentation_offline():
    assert toks("我喜欢这部电影。很好看！", lang="zh") == ["我", "喜", "欢", "这", "部", "电", "影", "很", "好", "看"]


def test_multi_language_tokenizer():
    assert toks("Das ist très bien!", lang="xx") == ["das", "ist", "très", "bien"]


@pytest.mark.skipif(importlib.util.find_spec("sudachipy") is not None, reason="sudachipy is installed here")
def test_japanese_names_the_package():
    with pytest.raises(LanguageError, match="sudachipy"):
        load_tokenizer("ja")


@pytest.mark.skipif(importlib.util.find_spec("pythainlp") is not None, reason="pythainlp is installed here")
def test_thai_names_the_package():
    with pytest.raises(LanguageError, match="pythainlp"):
        next(tokenize(["x"], TextSettings(lang="th")))


def test_unknown_language_lists_codes():
    with pytest.raises(LanguageError, match=r"Unknown language 'qq'.*'xx'.*\bde\b.*\bfr\b"):
        load_tokenizer("qq")
    assert {"en", "de", "fr", "zh", "xx"} <= set(available_languages())


def test_region_code_gets_a_hint():
    with pytest.raises(LanguageError, match="Did you mean 'pt'"):
        load_tokenizer("pt_BR")
    with pytest.raises(LanguageError, match="Unknown language '../en'"):
        load_tokenizer("../en")  # never handed to an import


def test_tokenizer_is_cached():
    assert load_tokenizer("en") is load_tokenizer(" EN ")


def test_order_and_laziness():
    seen = []

    def texts():
        for t in ("one", "two three", "", "four"):
            seen.append(t)
            yield t

    out = tokenize(texts(), TextSettings(), batch_size=2)
    assert seen == []  # nothing read before the first result is asked for
    assert list(out) == [["one"], ["two", "three"], [], ["four"]]


def test_one_string_is_refused():
    with pytest.raises(InputError, match="one str"):
        list(tokenize("a text", TextSettings()))


def test_non_text_is_refused():
    with pytest.raises(InputError, match="Text number 1 is NoneType"):
        list(tokenize(["ok", None], TextSettings()))


@pytest.mark.parametrize("kwargs", [{"batch_size": 0}, {"n_process": 0}, {"n_process": -2}])
def test_bad_pipe_arguments(kwargs):
    with pytest.raises(InputError):
        tokenize(["x"], TextSettings(), **kwargs)  # checked by the call, before any text is read


def test_processes_give_the_same_tokens():
    texts = [f"Text number {i}: Straße, ÄRGER über l'été!" for i in range(60)]
    settings = TextSettings(lang="de")
    assert list(tokenize(texts, settings, batch_size=7, n_process=2)) == list(tokenize(texts, settings))
