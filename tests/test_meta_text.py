"""Meta text by family and shape (schemas/meta_text.py), and its one definition shared
by the build (drop_meta_messages) and Claude Code's ingest."""

import json
from importlib import resources

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from etl.schemas import meta_text
from etl.transforms.text import drop_meta_messages, meta_reason_str

FAMILY_CASES = [
    # Claude Code interrupts, any suffix
    ("[Request interrupted by user]", "meta:interrupted"),
    ("[Request interrupted by user for tool use]", "meta:interrupted"),
    ("[Request interrupted by user for plan mode]", "meta:interrupted"),
    ("[Request interrupted by user: escape pressed]", "meta:interrupted"),
    ("The user doesn't want to proceed with this tool use. The tool use was rejected (eg. if it was a file edit, "
     "the new_string was NOT written to the file). STOP what you are doing and wait for the user to tell you how to proceed.",
     "meta:tool_notice"),
    ("[Tool result missing due to internal error]", "meta:tool_notice"),
    ("<system-reminder>\nThe user opened a file\n</system-reminder>", "meta:injected"),
    ("<bash-stdout>ok</bash-stdout><bash-stderr></bash-stderr>", "meta:command"),
    # iOS / macOS tapbacks, English, every kind, added and removed
    ("Loved “see you at 5”", "meta:tapback"),
    ('Liked "sounds good"', "meta:tapback"),
    ("Disliked “traffic”", "meta:tapback"),
    ("Laughed at “lol\nthat was funny”", "meta:tapback"),
    ("Emphasized “don’t forget the keys”", "meta:tapback"),
    ("Questioned “dinner at 8?”", "meta:tapback"),
    ("Removed a heart from “ok”", "meta:tapback"),
    ("Removed a like from “ok”", "meta:tapback"),
    ("Removed an exclamation from “ok”", "meta:tapback"),
    ("Removed a question mark from “ok”", "meta:tapback"),
    ("Loved an image", "meta:tapback"),
    ("Liked a movie", "meta:tapback"),
    ("Laughed at an audio message", "meta:tapback"),
    ("Emphasized an attachment", "meta:tapback"),
    # iOS 17/18 custom emoji and sticker reactions
    ("Reacted 🎉 to “we won”", "meta:tapback"),
    ("Reacted 👍🏽 to “ok”", "meta:tapback"),
    ("Reacted ❤️‍🔥 to an image", "meta:tapback"),
    ("Reacted with a sticker to “hi”", "meta:tapback"),
    ("Removed 🎉 from “we won”", "meta:tapback"),
    # Google Messages (marks around the localised sentence) and the short Android form
    ("\u200aReacted \u200b😂\u200b to \u200a“so good”\u200a\u200a", "meta:tapback"),
    ("\u200aRemoved \u200c😂\u200c from \u200a“so good”\u200a\u200a", "meta:tapback"),
    ("\u200aHa reaccionado \u200b😂\u200b a \u200a“qué bueno”\u200a\u200a", "meta:tapback"),
    ('👍 to "You still coming over"', "meta:tapback"),
    # other languages
    ("Le encantó “nos vemos”", "meta:tapback"),
    ("Reaccionó con 🫡 a “hola”", "meta:tapback"),
    ("Curtiu “até amanhã”", "meta:tapback"),
    ("A réagi avec 😂 à “à demain”", "meta:tapback"),
    ("„bis morgen“ ein Herz hinzugefügt", "meta:tapback"),
    ("Gefällt: „bis morgen“", "meta:tapback"),
    ("Hat mit 🎉 auf „gewonnen“ reagiert", "meta:tapback"),
    ("Ha messo “Mi piace” a “a domani”", "meta:tapback"),
    ("Vond “tot morgen” leuk", "meta:tapback"),
    ("「また明日」にいいねしました", "meta:tapback"),
    ("對「明天見」按讚", "meta:tapback"),
    ("赞了“明天见”", "meta:tapback"),
    ("“내일 봐”을(를) 좋아함", "meta:tapback"),
    ("Понравилось «до завтра»", "meta:tapback"),
    ("“yarın görüşürüz” mesajını beğendi", "meta:tapback"),
    # WhatsApp media placeholders, Android and iOS, with and without media
    ("<Media omitted>", "meta:media_placeholder"),
    ("<Multimedia omitido>", "meta:media_placeholder"),
    ("<Mídia omitida>", "meta:media_placeholder"),
    ("<Médias omis>", "meta:media_placeholder"),
    ("<Medien ausgeschlossen>", "meta:media_placeholder"),
    ("<Media omessi>", "meta:media_placeholder"),
    ("<Media weggelaten>", "meta:media_placeholder"),
    ("<メディアなし>", "meta:media_placeholder"),
    ("<省略多媒体文件>", "meta:media_placeholder"),
    ("<미디어 파일 제외됨>", "meta:media_placeholder"),
    ("<Без медиафайлов>", "meta:media_placeholder"),
    ("<Medya dahil edilmedi>", "meta:media_placeholder"),
    ("\u200eimage omitted", "meta:media_placeholder"),
    ("sticker omitted", "meta:media_placeholder"),
    ("imagen omitida", "meta:media_placeholder"),
    ("Bild weggelassen", "meta:media_placeholder"),
    ("\u200e<attached: 00000012-PHOTO-2020-01-01-12-00-00.jpg>", "meta:media_placeholder"),
    ("IMG-20200101-WA0001.jpg (file attached)", "meta:media_placeholder"),
    ("\u200e4f2680f1db95a8454775cc2eefc95bfc.jpg (Datei angehängt)", "meta:media_placeholder"),
    ("Quarterly report.pdf • 3 pages document omitted", "meta:media_placeholder"),
    # deletions
    ("This message was deleted", "meta:deleted"),
    ("You deleted this message.", "meta:deleted"),
    ("Se eliminó este mensaje.", "meta:deleted"),
    ("Essa mensagem foi apagada", "meta:deleted"),
    ("Ce message a été supprimé", "meta:deleted"),
    ("Diese Nachricht wurde gelöscht", "meta:deleted"),
    ("Questo messaggio è stato eliminato", "meta:deleted"),
    ("Dit bericht is verwijderd", "meta:deleted"),
    ("このメッセージは削除されました", "meta:deleted"),
    ("此消息已删除", "meta:deleted"),
    ("삭제된 메시지입니다", "meta:deleted"),
    ("Данное сообщение удалено", "meta:deleted"),
    ("Bu mesaj silindi", "meta:deleted"),
    ("Jordan unsent a message", "meta:deleted"),
    # calls
    ("\u200eMissed voice call", "meta:call"),
    ("Missed video call", "meta:call"),
    ("\u200eMissed voice call, \u200eTap to call back", "meta:call"),
    ("Voice call, 12 min", "meta:call"),
    ("Videollamada perdida", "meta:call"),
    ("Verpasster Sprachanruf", "meta:call"),
    ("Пропущенный аудиозвонок", "meta:call"),
    ("부재중 음성통화", "meta:call"),
]

# Owner sentences that mention the words but are not the app's frames.
KEPT = [
    "I liked “Dune” a lot",
    "I loved “Dune” so much, you should see it",
    "Liked it",
    "liked your photo haha",
    "Loved it",
    "Welcome to “Paris”",
    "she said “yes” to the dress",
    "Reacted badly to the news",
    "the image omitted from the deck was the best one",
    "This message was deleted?? by whom",
    "I deleted this message by accident, sorry",
    "No response requested. But I replied anyway",
    "[Request interrupted by user] is what it printed",
    "why does it say [Request interrupted by user]?",
    "my <command-name> tag",
    "video call",
    "Video call tomorrow?",
    "missed your call, call you back",
    "Media omitted from the report",
    "",
]


@pytest.mark.parametrize(("text", "reason"), FAMILY_CASES)
def test_each_family_by_shape(text, reason):
    assert meta_text.classify(text) == reason
    assert meta_reason_str(text) == reason  # the build reads the same definition


@pytest.mark.parametrize("text", KEPT)
def test_sentences_that_mention_the_words_are_kept(text):
    assert meta_text.classify(text) is None
    assert meta_reason_str(text) is None


_QUOTE_PAIRS = [("“", "”"), ('"', '"'), ("„", "“"), ("«", "»"), ("「", "」")]
_FRAMES = ["Loved {}", "Liked {}", "Laughed at {}", "Removed a like from {}", "Reacted 😂 to {}", "Reacted with a sticker to {}",
           "Le gustó {}", "{} ein Lachen hinzugefügt", "Понравилось {}", "{}にいいねしました"]


@settings(max_examples=60, deadline=None)
@given(quoted=st.text(min_size=1, max_size=80), pair=st.sampled_from(_QUOTE_PAIRS), frame=st.sampled_from(_FRAMES))
def test_any_quoted_message_in_a_reaction_frame_is_a_tapback(quoted, pair, frame):
    text = frame.format(pair[0] + quoted + pair[1])
    assert meta_text.classify(text) == "meta:tapback"


@settings(max_examples=60, deadline=None)
@given(suffix=st.text(alphabet=st.characters(blacklist_characters="]\n"), max_size=40))
def test_any_interrupt_suffix_is_an_interrupt(suffix):
    assert meta_text.classify(f"[Request interrupted by user{suffix}]") == "meta:interrupted"


@settings(max_examples=60, deadline=None)
@given(before=st.text(alphabet="abcdefghij klmnop", min_size=1, max_size=30).filter(lambda s: s.strip()),
       family=st.sampled_from([t for t, _ in FAMILY_CASES if "\n" not in t]))
def test_a_frame_inside_a_longer_sentence_is_typed_text(before, family):
    # The frames are whole messages: words typed around one make it a person's message.
    assert meta_text.classify(f"{before.strip()}: {family} {before.strip()}") is None


def test_python_and_polars_read_every_family_alike():
    texts = [t for t, _ in FAMILY_CASES] + KEPT
    frame = pl.DataFrame({"text": texts, "kind": ["text"] * len(texts), "drop_reason": [None] * len(texts)},
                         schema_overrides={"drop_reason": pl.String})
    out = drop_meta_messages(frame.lazy()).collect()
    assert out["drop_reason"].to_list() == [meta_text.classify(t) for t in texts]


def test_every_phrase_names_where_it_comes_from():
    folder = resources.files("etl.schemas").joinpath("meta_phrases")
    files = [p for p in folder.iterdir() if p.name.endswith(".json")]
    assert len(files) >= 5
    for path in files:
        data = json.loads(path.read_text("utf-8"))
        sources = data["sources"]
        for entry in data.get("entries", []) + data.get("families", []):
            assert entry["source"] in sources, (path.name, entry)
            assert entry.get("templates") or entry.get("regex")


def test_languages_covered():
    wanted = {"en", "es", "pt", "fr", "de", "it", "nl", "ja", "zh", "ko", "ru", "tr"}
    folder = resources.files("etl.schemas").joinpath("meta_phrases")
    for name in ("tapbacks.json", "media_placeholders.json", "deleted.json", "calls.json"):
        langs = {e["lang"] for e in json.loads(folder.joinpath(name).read_text("utf-8"))["entries"]}
        assert wanted <= langs, (name, wanted - langs)


def test_declared_reasons_cover_the_families():
    assert {f.reason for f in meta_text.families()} == set(meta_text.REASONS)
