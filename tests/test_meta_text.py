"""Meta text by family and shape (schemas/meta_text.py), and its one definition shared
by the build (drop_meta_messages) and Claude Code's ingest."""

import json
from importlib import resources

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import shared_fixture
from etl.build import build_version
from etl.config import load_config
from etl.ingest import run_ingest
from etl.schemas import meta_text
from etl.sources import get_source
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
    ("<user-prompt-submit-hook>lint passed</user-prompt-submit-hook>", "meta:injected"),
    ("<task-notification>\n<task-id>b1</task-id>\n<status>completed</status>\n</task-notification>", "meta:injected"),
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
    "<div>hello</div>",
    "<my-widget> is not rendering, why?",
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
@given(quoted=st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=80), pair=st.sampled_from(_QUOTE_PAIRS), frame=st.sampled_from(_FRAMES))
def test_any_quoted_message_in_a_reaction_frame_is_a_tapback(quoted, pair, frame):
    text = frame.format(pair[0] + quoted + pair[1])
    assert meta_text.classify(text) == "meta:tapback"
    assert meta_reason_str(text) == "meta:tapback"  # the build's cheap first pass lets it through


@settings(max_examples=60, deadline=None)
@given(suffix=st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="]\n"), max_size=40))
def test_any_interrupt_suffix_is_an_interrupt(suffix):
    assert meta_text.classify(f"[Request interrupted by user{suffix}]") == "meta:interrupted"
    assert meta_reason_str(f"[Request interrupted by user{suffix}]") == "meta:interrupted"


@settings(max_examples=60, deadline=None)
@given(case=st.sampled_from(FAMILY_CASES), pad=st.sampled_from(["", " ", "\u200e", "\n", " \u200f "]),
       stop=st.sampled_from(["", "."]), upper=st.booleans())
def test_the_first_pass_never_hides_a_match(case, pad, stop, upper):
    text = pad + (case[0].upper() if upper else case[0]) + stop + pad
    assert meta_reason_str(text) == meta_text.classify(text)


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


# ----------------------------------------------------------------------------- a build from chat exports

_SYNTHETIC_CHAT = """\
[05/03/2024, 09:00:00] Lena Fischer: Are you coming to the climbing gym tonight?
[05/03/2024, 09:01:00] Sam Rivera: Yes, I will be there around seven with the new rope.
[05/03/2024, 09:02:00] Lena Fischer: Great, bring the chalk bag too please
[05/03/2024, 09:03:00] Sam Rivera: \u200eimage omitted
[05/03/2024, 09:04:00] Lena Fischer: Nice photo of the wall, where was that taken?
[05/03/2024, 09:05:00] Sam Rivera: Loved “Nice photo of the wall, where was that taken?”
[05/03/2024, 09:06:00] Lena Fischer: Did you see the new routes they set this week?
[05/03/2024, 09:07:00] Sam Rivera: \u200eThis message was deleted
[05/03/2024, 09:08:00] Lena Fischer: Hello? Are you still there, did something happen?
[05/03/2024, 09:09:00] Sam Rivera: <Medien ausgeschlossen>
[05/03/2024, 09:10:00] Lena Fischer: Was ist mit den neuen Routen, hast du sie gesehen?
[05/03/2024, 09:11:00] Sam Rivera: \u200eMissed voice call
[05/03/2024, 09:12:00] Lena Fischer: Call me back when you can, it is about the trip
[05/03/2024, 09:13:00] Sam Rivera: Reacted 🎉 to “Call me back when you can, it is about the trip”
[05/03/2024, 09:14:00] Lena Fischer: So are we still on for Saturday morning then?
[05/03/2024, 09:15:00] Sam Rivera: Se eliminó este mensaje
[05/03/2024, 09:16:00] Lena Fischer: Tell me soon, I need to book the car for us both
[05/03/2024, 09:16:10] Lena Fischer: Und die Seile, hast du die neuen schon ausprobiert?
[05/03/2024, 09:16:20] Sam Rivera: „Und die Seile, hast du die neuen schon ausprobiert?“ ein Herz hinzugefügt
[05/03/2024, 09:16:30] Lena Fischer: Ладно, тогда до субботы, не забудь верёвку
[05/03/2024, 09:16:40] Sam Rivera: Понравилось «Ладно, тогда до субботы, не забудь верёвку»
[05/03/2024, 09:16:50] Lena Fischer: またね、土曜日に会いましょう
[05/03/2024, 09:16:55] Sam Rivera: このメッセージは削除されました
[05/03/2024, 09:16:58] Lena Fischer: Okay then, see you soon and do not be late
[05/03/2024, 09:17:00] Sam Rivera: I liked “the crag at dawn” best, let us book the car for Saturday.
"""


def test_a_build_from_chat_exports_has_no_meta_in_any_assistant_turn(tmp_path):
    (tmp_path / "corpus.toml").write_text('[owner]\nnames = ["Sam Rivera"]\n', encoding="utf-8")
    config = load_config(tmp_path / "corpus.toml")
    warehouse = tmp_path / "w.duckdb"
    export = tmp_path / "WhatsApp Chat with Lena Fischer.txt"
    export.write_text(_SYNTHETIC_CHAT, encoding="utf-8")
    whatsapp = get_source("whatsapp")
    run_ingest(warehouse, whatsapp, [export], {"timezone": "UTC"}, config.owner)
    for relpath, me in [
        ("whatsapp/whatstk/pokemon.txt", "Ash Ketchum"),
        ("whatsapp/chat-miner/test_ddmmyy_24hrs.txt", "John Doe"),
        ("whatsapp/pustur/index_test_chatExample.txt", "Sample User"),
    ]:
        run_ingest(warehouse, whatsapp, [shared_fixture(relpath)], {"me": (me,), "timezone": "UTC"}, config.owner)
    run_ingest(warehouse, get_source("claude-code"), [shared_fixture("ai_chat/claude_code")], {}, config.owner)
    version = build_version(warehouse, tmp_path / "datasets", "v1", config)
    answers = [
        message["content"]
        for path in sorted((version.path / "chatml").glob("*.jsonl"))
        for line in path.read_text(encoding="utf-8").splitlines()
        for message in json.loads(line)["messages"]
        if message["role"] == "assistant"
    ]
    assert any("book the car for Saturday" in a for a in answers)  # the build did produce Sam's words
    assert [a for a in answers if meta_text.classify(a)] == []
    for family in ("image omitted", "Loved “", "This message was deleted", "Medien ausgeschlossen", "Missed voice call",
                   "Reacted 🎉", "Se eliminó", "ein Herz hinzugefügt", "Понравилось", "削除されました"):
        assert not any(family in a for a in answers), family
