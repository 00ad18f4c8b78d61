"""A synthetic Messages database (`chat.db`) in the real macOS schema.

The owner is Sam Rivera, a software engineer, texting a partner, friends, family and
colleagues in 1:1 and group chats. The history holds what a real chat.db holds:
text only in `attributedBody` on recent rows, tapbacks, attachment placeholders, an
edited and an unsent message, group renames and joins, threaded replies, nanosecond
dates since 2001, plus a few traps for the build (pasted fake secrets, mojibake,
near-duplicate replies).

Generation is deterministic: message N is the same for a given seed whatever the
total size, so a database can be grown by appending (`start_rowid`) and
`python -m etl.samples.make_chatdb OUT` twice gives byte-identical files.
"""

from __future__ import annotations

import argparse
import plistlib
import random
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from etl.sources.typedstream import encode_attributed_body

DEFAULT_SEED = 20240304
START = datetime(2024, 3, 4, 7, 30, tzinfo=UTC)  # first message of the history
APPLE_EPOCH = datetime(2001, 1, 1, tzinfo=UTC)
NS = 1_000_000_000

# Rows up to here are "older Macs": the first ones have only `text`, the next ones
# both `text` and `attributedBody`; everything later has text only in attributedBody.
TEXT_ONLY_UNTIL = 20
TEXT_AND_BODY_UNTIL = 60

OWNER_PHONE = "+14155550100"
OWNER_ACCOUNT = f"P:{OWNER_PHONE}"
ACCOUNT_GUID = "5B0F6A4E-2C1D-4E8B-9A37-0D6C1E2F3A4B"

# ----------------------------------------------------------------------------- people and chats

# key -> (handle id, service). Handle ROWIDs follow this order.
HANDLES: dict[str, tuple[str, str]] = {
    "jordan": ("+14155550123", "iMessage"),
    "priya": ("+14155550142", "iMessage"),
    "marcus": ("+14155550167", "iMessage"),
    "lena": ("lena.fischer@example.com", "iMessage"),
    "tomas": ("+14155550178", "iMessage"),
    "mei": ("mei.chen@example.com", "iMessage"),
    "olu": ("+14155550189", "iMessage"),
    "mom": ("+14155550111", "SMS"),
    "ana": ("+14155550133", "iMessage"),
    "dan": ("+14155550199", "iMessage"),
}


@dataclass(frozen=True)
class Chat:
    key: str
    members: tuple[str, ...]
    display_name: str = ""  # what Messages stores for unnamed chats
    group_id: str = ""  # the digits of a group's chat identifier

    @property
    def is_group(self) -> bool:
        return len(self.members) > 1

    @property
    def service(self) -> str:
        return HANDLES[self.members[0]][1]

    @property
    def identifier(self) -> str:
        return f"chat{self.group_id}" if self.is_group else HANDLES[self.members[0]][0]

    @property
    def guid(self) -> str:
        return f"{self.service};{'+' if self.is_group else '-'};{self.identifier}"


# Chat ROWIDs follow this order.
CHATS: dict[str, Chat] = {
    c.key: c
    for c in (
        Chat("jordan", ("jordan",)),
        Chat("priya", ("priya",)),
        Chat("tomas", ("tomas",)),
        Chat("mom", ("mom",)),
        Chat("lena", ("lena",)),
        Chat("crew", ("priya", "marcus", "lena", "dan"), "Climbing crew", "418230117759426318"),
        Chat("platform", ("tomas", "mei", "olu"), "Platform team 🚀", "582017734410925561"),
        Chat("family", ("mom", "ana", "jordan"), "", "903316458820174402"),
    )
}

# ----------------------------------------------------------------------------- the script


@dataclass(frozen=True)
class Tap:
    """A tapback on an earlier message of the scene (`back` = 1: the latest one)."""

    type: int  # 2000 love, 2001 like, 2002 dislike, 2003 laugh, 2004 emphasis, 2005 question; +1000 removes
    back: int = 1
    emoji: str | None = None  # 2006: an emoji tapback


@dataclass(frozen=True)
class Attach:
    filename: str
    mime: str
    caption: str = ""


@dataclass(frozen=True)
class Edit:
    original: str
    edited: str


@dataclass(frozen=True)
class Unsend:
    original: str


@dataclass(frozen=True)
class Rename:
    title: str


@dataclass(frozen=True)
class Added:
    who: str


@dataclass(frozen=True)
class Reply:
    text: str
    back: int = 1


# Scenes: (chat, lines). A line is (who, text | Tap | Attach | Edit | Unsend | Rename | Added | Reply).
SCENES: tuple[tuple[str, tuple[tuple[str, object], ...]], ...] = (
    ("jordan", (
        ("jordan", "are you still at the office?"),
        ("me", "yeah, deploy is dragging. 20 more min"),
        ("jordan", "ok. thai or the ramen place?"),
        ("me", "ramen. I need something that isn't a sad desk salad"),
        ("jordan", Tap(2000)),
        ("jordan", "lol. I'll grab a table"),
        ("me", "Running 10 min late, sorry!"),
        ("jordan", "of course you are 🙃"),
    )),
    ("platform", (
        ("tomas", "staging is throwing 503s again"),
        ("me", "looking. probably the connection pool, we bumped the workers yesterday without touching max_connections"),
        ("mei", "that tracks, postgres is sitting at 97 connections"),
        ("me", "ok rolling back the worker count, then I'll open a PR that sizes the pool from the env instead of hardcoding it"),
        ("olu", "want me to page infra?"),
        ("me", "not yet. give me 10"),
        ("tomas", Tap(2001)),
        ("me", "rolled back. 503s are gone"),
        ("mei", "nice"),
        ("tomas", "can we add an alert on pool saturation so we don't find out from users next time"),
        ("me", "yes. I'll put it in the postmortem doc as an action item"),
    )),
    ("priya", (
        ("priya", "bouldering thursday?"),
        ("me", "can't thursday, sprint review. friday after 6?"),
        ("priya", "friday works. bring the chalk bag you stole from me"),
        ("me", "borrowed. long-term borrowed"),
        ("priya", Tap(2003)),
        ("priya", "😂"),
    )),
    ("jordan", (
        ("jordan", "how did the interview go?"),
        ("me", "Honestly better than I expected. They asked the usual system design question, a URL "
               "shortener, but the interesting part was the follow-up about what happens when one region "
               "goes down. I talked through read replicas and why I'd rather serve slightly stale redirects "
               "than fail closed, and the interviewer pushed back on consistency for the analytics side, "
               "which was fair. I think it went well, but I never really know with these."),
        ("jordan", "that sounds really good though"),
        ("me", "we'll see. they said they'd get back to me within a week"),
        ("jordan", "proud of you ❤️"),
        ("me", Tap(2000)),
    )),
    ("crew", (
        ("marcus", "who's in for Yosemite the weekend of the 14th?"),
        ("lena", "me!! I already asked for the Friday off"),
        ("me", "in. I can drive, the car fits four plus pads if nobody brings a cooler the size of a fridge"),
        ("priya", "that was ONE time"),
        ("marcus", "I'll try to book the campsite tonight"),
        ("me", "do we need a permit for Camp 4 or is it still first come first served?"),
        ("marcus", "it's a lottery now, I'll enter for all of us"),
        ("me", "Iâ€™m in, just tell me when we leave"),
        ("priya", Tap(2004)),
    )),
    ("mom", (
        ("mom", "Did you eat today?"),
        ("me", "yes mom. ramen"),
        ("mom", "That's not real food"),
        ("me", "it had an egg in it"),
        ("mom", "Call me this weekend, your aunt wants to hear about the wedding"),
        ("me", "will do, Sunday afternoon?"),
        ("mom", "👍"),
    )),
    ("tomas", (
        ("tomas", "can you look at my PR when you get a sec? it's the retry logic one"),
        ("me", "yep, after lunch"),
        ("me", "left some comments. main thing: the backoff has no jitter, so every worker retries at the same instant"),
        ("tomas", "oh good catch"),
        ("me", "also cap the max delay, otherwise after 10 failures you're waiting 17 minutes"),
        ("tomas", "fixed both, re-requested review"),
        ("me", "approved 🚢"),
    )),
    ("jordan", (
        ("me", "running 10 mins late sorry"),
        ("jordan", "again?"),
        ("me", "the train is stuck outside the station, not my fault this time"),
        ("jordan", "sure, sure"),
        ("me", Tap(2005)),
    )),
    ("tomas", (
        ("tomas", "do you have creds for the sandbox account? I need to test the upload path"),
        ("me", "here's the access key for sandbox: AKIAFAKE0EXAMPLE1234 the secret is in 1password under 'sandbox-ci'"),
        ("tomas", "thanks!"),
        ("me", "actually I shouldn't have pasted that here. I'll rotate it after you're done, tell me when"),
        ("tomas", "done, rotate away"),
    )),
    ("lena", (
        ("lena", Attach("IMG_4821.HEIC", "image/heic")),
        ("lena", "look at this crag I found near Bishop"),
        ("me", "that's gorgeous. how long is the approach?"),
        ("lena", "like 40 min, mostly flat"),
        ("me", Attach("IMG_0932.JPG", "image/jpeg", "this is what my legs looked like after the last "
                                                    "'mostly flat' approach")),
        ("lena", "lmao"),
        ("lena", Tap(2003)),
    )),
    ("jordan", (
        ("me", Edit("can you pick up milk on teh way home?", "can you pick up milk on the way home?")),
        ("jordan", "oat or regular"),
        ("me", "oat"),
        ("jordan", "👍"),
    )),
    ("platform", (
        ("tomas", Rename("Platform team 🚀")),
        ("mei", "should we split the ingest service out or keep the monolith for another quarter?"),
        ("me", "Keep it for now. Splitting buys us independent deploys, but we'd pay for it with a second "
               "on-call rotation and a network hop on the hottest path. I'd rather get the module boundaries "
               "clean inside the monolith first, with their own tests and owners, and only pull one out once "
               "it actually needs to scale differently."),
        ("olu", "+1, the boundary work is worth doing either way"),
        ("tomas", "ok, I'll draft an RFC"),
        ("me", Tap(2001)),
    )),
    ("family", (
        ("ana", "Mom's birthday is on the 22nd, are we doing dinner?"),
        ("mom", "I can see this, I'm in the chat"),
        ("me", "lol. dinner at ours? Jordan wants to make paella"),
        ("jordan", "I do want to make paella"),
        ("ana", "perfect, I'll bring dessert"),
        ("mom", Tap(2000)),
    )),
    ("jordan", (
        ("jordan", "did you book the dentist"),
        ("me", "no. tomorrow. promise"),
        ("jordan", "you said that last week"),
        ("me", "I know. setting a reminder right now"),
    )),
    ("crew", (
        ("priya", Added("dan")),
        ("dan", "hey all, thanks for the add"),
        ("me", "welcome! fair warning, this chat is 90% beta spray"),
        ("dan", "perfect, that's what I'm here for"),
        ("lena", Tap(2003, back=1)),
    )),
    ("tomas", (
        ("tomas", "CI can't clone the private submodule"),
        ("me", "use the deploy key, not a personal token"),
        ("tomas", "ok so what do I put in the workflow"),
        ("me", "for now this works, it's my token: ghp_FAKE0123456789abcdefghijklmnopqrstuv I'll revoke it tonight"),
        ("me", "long term: add the deploy key as a repo secret and set GIT_SSH_COMMAND in the job, no tokens anywhere"),
        ("tomas", "got it, thanks"),
    )),
    ("jordan", (
        ("jordan", "what do you want to do this weekend?"),
        ("me", "Saturday morning farmers market, then I honestly want to do nothing. Sunday I promised mom "
               "a call and I need to finish the slides for Tuesday. maybe a movie Sunday night?"),
        ("jordan", "deal. you pick the movie but no more heist films"),
        ("me", "no promises"),
        ("jordan", Tap(2003)),
    )),
    ("platform", (
        ("mei", "retro notes are up, please add your items by Thursday"),
        ("me", Reply("added mine. mostly about the flaky integration tests", back=1)),
        ("tomas", "same, added two"),
        ("olu", Reply("thanks for organizing Mei", back=3)),
        ("tomas", Tap(3001, back=3)),
    )),
    ("priya", (
        ("priya", "can I ask you a career thing"),
        ("me", "always"),
        ("priya", "I got an offer from a startup, 20% more cash but the equity is vague. would you take it?"),
        ("me", "Depends what vague means. Ask them for the number of shares, the total shares outstanding and "
               "the last preferred price, then you can actually do the math. If they won't tell you, that's "
               "your answer. Cash you can count on, equity you should value at zero until proven otherwise."),
        ("priya", "that's super helpful, thank you"),
        ("me", "happy to look at the offer letter if you want"),
        ("priya", Tap(2000)),
    )),
    ("crew", (
        ("marcus", "lottery results are out tomorrow 🤞"),
        ("me", Unsend("we should all chip in for Marcus's birthday shoes")),
        ("me", "wrong chat 🙈 ignore"),
        ("marcus", "what did you say?? 👀"),
        ("lena", "nothing. absolutely nothing"),
    )),
    ("jordan", (
        ("me", Attach("IMG_5110.HEIC", "image/heic")),
        ("jordan", "WHO IS THAT"),
        ("me", "a dog at the office. his name is Biscuit"),
        ("jordan", Tap(2006, back=3, emoji="😍")),
        ("jordan", "I need to meet Biscuit"),
    )),
    ("mom", (
        ("me", "landed safe"),
        ("mom", "Thank God. Text me when you get to the hotel"),
        ("me", "at the hotel"),
        ("mom", "❤️"),
    )),
    ("platform", (
        ("olu", "is anyone else seeing the build take 20 minutes now?"),
        ("me", "yes. the docker layer cache got invalidated when we bumped the base image"),
        ("mei", "can we pin the base image digest?"),
        ("me", "we should. I'll do it and warm the cache tonight"),
        ("olu", "legend"),
        ("me", "ok build is back to 6 min"),
        ("olu", Tap(2004)),
    )),
    ("jordan", (
        ("me", "Running 10 minutes late, sorry!!"),
        ("jordan", "I'm starting to think you do this on purpose"),
        ("me", "the standup ran over, I swear"),
        ("jordan", "I ordered you the spicy one"),
        ("me", "you're the best"),
    )),
    ("lena", (
        ("lena", "did you ever finish that side project, the one that turns your texts into a dataset?"),
        ("me", "kind of. it works on my own messages, which is both cool and a little creepy"),
        ("lena", "what are you going to do with it"),
        ("me", "fine-tune a small model to write like me. mostly to see if it's possible"),
        ("lena", "so I could text the bot instead of you"),
        ("me", "please don't, it's worse at replying than I am"),
        ("lena", Tap(2003)),
    )),
    ("family", (
        ("mom", "Who is bringing the candles"),
        ("ana", "I have candles"),
        ("me", "I'll bring wine then"),
        ("mom", "No more than two bottles"),
        ("me", "three it is"),
    )),
    ("priya", (
        ("priya", "update: I took the offer!!"),
        ("me", "congrats!!! they gave you the numbers?"),
        ("priya", "they did, and it was better than I thought"),
        ("me", "that's great news. drinks on me friday"),
    )),
    ("crew", (
        ("marcus", "WE GOT CAMP 4"),
        ("lena", "no way"),
        ("me", "let's gooo. I'll pick everyone up at 5am friday"),
        ("priya", "5am is a crime"),
        ("me", "traffic is the bigger crime"),
        ("priya", Tap(2001)),
    )),
    ("jordan", (
        ("jordan", "don't forget the dentist tomorrow at 9"),
        ("me", "booked and in the calendar, see, I listen"),
        ("jordan", Tap(2000)),
    )),
    ("tomas", (
        ("tomas", "how do you estimate stuff? my sprint estimates are always off by 2x"),
        ("me", "Mine too, the trick is to stop estimating the coding. Break it into pieces small enough that "
               "you'd bet on each one, then add the things people forget: review rounds, the migration, "
               "the flaky test you'll hit, the meeting that eats a morning. And track how far off you were, "
               "so next time you can correct for your own bias."),
        ("tomas", "ok that's fair. I never count review time"),
        ("me", "nobody does. it's usually a day per PR when people are busy"),
        ("tomas", Tap(2001)),
    )),
    ("platform", (
        ("olu", "reminder: I'm on call this week, ping me directly if the pager is quiet but something is on fire"),
        ("mei", "who's reviewing the schema migration?"),
        ("me", "me. is it the one that adds the index on events.created_at?"),
        ("mei", "yes"),
        ("me", "then build it concurrently, that table is 400M rows and a plain CREATE INDEX will lock writes"),
        ("mei", "good call, changing it"),
        ("tomas", "also no deploys friday please, I want a quiet weekend"),
        ("me", "friday deploy freeze is the only process I fully believe in"),
        ("olu", Tap(2003)),
    )),
    ("priya", (
        ("priya", "I think I tweaked my finger on that crimpy route"),
        ("me", "ugh. A2 pulley?"),
        ("priya", "maybe? it hurts when I close my hand"),
        ("me", "rest it for a week at least and tape it when you go back. and maybe see a PT, "
               "I ignored mine for a month and regretted it"),
        ("priya", "ok ok. no crimps"),
        ("me", "no crimps. slab only 😇"),
    )),
    ("mom", (
        ("mom", "Your tía is asking for the recipe for the flan you made"),
        ("me", "it's your recipe mom"),
        ("mom", "She doesn't know that"),
        ("me", "😂 sending it tonight"),
        ("mom", Tap(2003)),
    )),
    ("lena", (
        ("lena", "any book recs? I finished the one you lent me"),
        ("me", "did you like it?"),
        ("lena", "loved the first half, the ending dragged"),
        ("me", "agreed. try The Overstory if you haven't, or something short like Piranesi"),
        ("lena", "Piranesi it is"),
        ("lena", Tap(2000, back=2)),
    )),
    ("crew", (
        ("lena", Attach("IMG_6021.HEIC", "image/heic")),
        ("lena", Attach("IMG_6022.HEIC", "image/heic", "best trip in a long time")),
        ("marcus", "my forearms are still dead"),
        ("me", "same. I sent the Camp 4 boulder on the last day though, first time"),
        ("priya", "SAM!! congrats"),
        ("me", "thanks, it only took three trips"),
        ("dan", Tap(2004, back=1)),
        ("marcus", "next time El Cap meadow picnic, no climbing, just vibes"),
    )),
    ("family", (
        ("ana", "are we doing thanksgiving at mom's or at ours this year?"),
        ("mom", "Mine. I already bought the turkey"),
        ("me", "it's october"),
        ("mom", "It's in the freezer"),
        ("jordan", "I'll make the sides"),
        ("ana", Tap(2001)),
    )),
    ("jordan", (
        ("jordan", "where are you"),
        ("me", "on my way, 5 min"),
        ("jordan", "you said 5 min 10 min ago"),
        ("me", "on my way, really, 5 minutes"),
        ("jordan", Tap(2003)),
    )),
    ("tomas", (
        ("tomas", "question: should I use polars or pandas for the new report job"),
        ("me", "polars. lazy frames, it's fast, and the API doesn't have twenty ways to do the same thing"),
        ("tomas", "the team knows pandas though"),
        ("me", "that's a real cost, fair. if it's a small job, pandas is fine. if it's the 50GB one, polars, "
               "and I'll pair with whoever picks it up"),
        ("tomas", "it's the 50GB one"),
        ("me", "polars then 🙂"),
    )),
    ("platform", (
        ("mei", "the migration ran fine btw, 0 write locks"),
        ("me", "nice, thanks for changing it"),
        ("tomas", "RFC for the ingest boundaries is up, comments welcome"),
        ("me", Reply("reading it now. first question: who owns the shared schema package?", back=1)),
        ("tomas", "good question. platform, I guess?"),
        ("me", "then let's write that down in the RFC, otherwise it becomes nobody's"),
    )),
    ("jordan", (
        ("jordan", "should we get a dog"),
        ("me", "is this about Biscuit"),
        ("jordan", "it's entirely about Biscuit"),
        ("me", "let's talk about it this weekend. I'm not saying no"),
        ("jordan", Tap(2000)),
        ("jordan", "that's a yes"),
        ("me", "that's a 'let's talk about it'"),
    )),
    ("priya", (
        ("priya", "finger is better! back on the wall"),
        ("me", "yay! easy though"),
        ("priya", "easy, I promise"),
        ("me", "thursday session?"),
        ("priya", "thursday works this time"),
    )),
)

REACTION_WORDS = {
    2000: "Loved", 2001: "Liked", 2002: "Disliked", 2003: "Laughed at", 2004: "Emphasized", 2005: "Questioned",
    3000: "Removed a heart from", 3001: "Removed a like from", 3002: "Removed a dislike from",
    3003: "Removed a laugh from", 3004: "Removed an exclamation from", 3005: "Removed a question mark from",
}

# ----------------------------------------------------------------------------- schema

# The tables of a macOS 15 chat.db the connector reads, with their real columns,
# plus the bookkeeping tables every chat.db has. Triggers that call Messages'
# own SQL functions are left out: they cannot run outside Messages.
SCHEMA = """
CREATE TABLE _SqliteDatabaseProperties (key TEXT, value TEXT, UNIQUE(key));
CREATE TABLE deleted_messages (ROWID INTEGER PRIMARY KEY AUTOINCREMENT UNIQUE, guid TEXT NOT NULL);
CREATE TABLE kvtable (ROWID INTEGER PRIMARY KEY AUTOINCREMENT UNIQUE, key TEXT UNIQUE NOT NULL, value BLOB NOT NULL);
CREATE TABLE handle (ROWID INTEGER PRIMARY KEY AUTOINCREMENT UNIQUE, id TEXT NOT NULL, country TEXT,
    service TEXT NOT NULL, uncanonicalized_id TEXT, person_centric_id TEXT, UNIQUE (id, service));
CREATE TABLE chat (ROWID INTEGER PRIMARY KEY AUTOINCREMENT, guid TEXT UNIQUE NOT NULL, style INTEGER,
    state INTEGER, account_id TEXT, properties BLOB, chat_identifier TEXT, service_name TEXT, room_name TEXT,
    account_login TEXT, is_archived INTEGER DEFAULT 0, last_addressed_handle TEXT, display_name TEXT,
    group_id TEXT, is_filtered INTEGER DEFAULT 0, successful_query INTEGER, engram_id TEXT,
    server_change_token TEXT, ck_sync_state INTEGER DEFAULT 0, original_group_id TEXT,
    last_read_message_timestamp INTEGER DEFAULT 0, cloudkit_record_id TEXT, last_addressed_sim_id TEXT,
    is_blackholed INTEGER DEFAULT 0, syndication_date INTEGER DEFAULT 0, syndication_type INTEGER DEFAULT 0,
    is_recovered INTEGER DEFAULT 0, is_deleting_incoming_messages INTEGER DEFAULT 0);
CREATE TABLE message (ROWID INTEGER PRIMARY KEY AUTOINCREMENT, guid TEXT UNIQUE NOT NULL, text TEXT,
    replace INTEGER DEFAULT 0, service_center TEXT, handle_id INTEGER DEFAULT 0, subject TEXT, country TEXT,
    attributedBody BLOB, version INTEGER DEFAULT 0, type INTEGER DEFAULT 0, service TEXT, account TEXT,
    account_guid TEXT, error INTEGER DEFAULT 0, date INTEGER, date_read INTEGER, date_delivered INTEGER,
    is_delivered INTEGER DEFAULT 0, is_finished INTEGER DEFAULT 0, is_emote INTEGER DEFAULT 0,
    is_from_me INTEGER DEFAULT 0, is_empty INTEGER DEFAULT 0, is_delayed INTEGER DEFAULT 0,
    is_auto_reply INTEGER DEFAULT 0, is_prepared INTEGER DEFAULT 0, is_read INTEGER DEFAULT 0,
    is_system_message INTEGER DEFAULT 0, is_sent INTEGER DEFAULT 0, has_dd_results INTEGER DEFAULT 0,
    is_service_message INTEGER DEFAULT 0, is_forward INTEGER DEFAULT 0, was_downgraded INTEGER DEFAULT 0,
    is_archive INTEGER DEFAULT 0, cache_has_attachments INTEGER DEFAULT 0, cache_roomnames TEXT,
    was_data_detected INTEGER DEFAULT 0, was_deduplicated INTEGER DEFAULT 0, is_audio_message INTEGER DEFAULT 0,
    is_played INTEGER DEFAULT 0, date_played INTEGER, item_type INTEGER DEFAULT 0, other_handle INTEGER DEFAULT 0,
    group_title TEXT, group_action_type INTEGER DEFAULT 0, share_status INTEGER DEFAULT 0,
    share_direction INTEGER DEFAULT 0, is_expirable INTEGER DEFAULT 0, expire_state INTEGER DEFAULT 0,
    message_action_type INTEGER DEFAULT 0, message_source INTEGER DEFAULT 0, associated_message_guid TEXT,
    associated_message_type INTEGER DEFAULT 0, balloon_bundle_id TEXT, payload_data BLOB,
    expressive_send_style_id TEXT, associated_message_range_location INTEGER DEFAULT 0,
    associated_message_range_length INTEGER DEFAULT 0, time_expressive_send_played INTEGER,
    message_summary_info BLOB, ck_sync_state INTEGER DEFAULT 0, ck_record_id TEXT, ck_record_change_tag TEXT,
    destination_caller_id TEXT, is_corrupt INTEGER DEFAULT 0, reply_to_guid TEXT, sort_id INTEGER,
    is_spam INTEGER DEFAULT 0, has_unseen_mention INTEGER DEFAULT 0, thread_originator_guid TEXT,
    thread_originator_part TEXT, syndication_ranges TEXT, synced_syndication_ranges TEXT,
    was_delivered_quietly INTEGER DEFAULT 0, did_notify_recipient INTEGER DEFAULT 0,
    date_retracted INTEGER DEFAULT 0, date_edited INTEGER DEFAULT 0, was_detonated INTEGER DEFAULT 0,
    part_count INTEGER, is_stewie INTEGER DEFAULT 0, is_kt_verified INTEGER DEFAULT 0, is_sos INTEGER DEFAULT 0,
    is_critical INTEGER DEFAULT 0, bia_reference_id TEXT DEFAULT NULL, fallback_hash TEXT DEFAULT NULL,
    associated_message_emoji TEXT DEFAULT NULL, is_pending_satellite_send INTEGER DEFAULT 0,
    needs_relay INTEGER DEFAULT 0, schedule_type INTEGER DEFAULT 0, schedule_state INTEGER DEFAULT 0,
    sent_or_received_off_grid INTEGER DEFAULT 0, date_recovered INTEGER DEFAULT 0);
CREATE TABLE attachment (ROWID INTEGER PRIMARY KEY AUTOINCREMENT, guid TEXT UNIQUE NOT NULL,
    created_date INTEGER DEFAULT 0, start_date INTEGER DEFAULT 0, filename TEXT, uti TEXT, mime_type TEXT,
    transfer_state INTEGER DEFAULT 0, is_outgoing INTEGER DEFAULT 0, user_info BLOB, transfer_name TEXT,
    total_bytes INTEGER DEFAULT 0, is_sticker INTEGER DEFAULT 0, sticker_user_info BLOB, attribution_info BLOB,
    hide_attachment INTEGER DEFAULT 0, ck_sync_state INTEGER DEFAULT 0, ck_server_change_token_blob BLOB,
    ck_record_id TEXT, original_guid TEXT UNIQUE NOT NULL, is_commsafety_sensitive INTEGER DEFAULT 0,
    emoji_image_content_identifier TEXT DEFAULT NULL, emoji_image_short_description TEXT DEFAULT NULL,
    preview_generation_state INTEGER DEFAULT 0);
CREATE TABLE chat_handle_join (chat_id INTEGER REFERENCES chat (ROWID) ON DELETE CASCADE,
    handle_id INTEGER REFERENCES handle (ROWID) ON DELETE CASCADE, UNIQUE(chat_id, handle_id));
CREATE TABLE chat_message_join (chat_id INTEGER REFERENCES chat (ROWID) ON DELETE CASCADE,
    message_id INTEGER REFERENCES message (ROWID) ON DELETE CASCADE, message_date INTEGER DEFAULT 0,
    PRIMARY KEY (chat_id, message_id));
CREATE TABLE message_attachment_join (message_id INTEGER REFERENCES message (ROWID) ON DELETE CASCADE,
    attachment_id INTEGER REFERENCES attachment (ROWID) ON DELETE CASCADE, UNIQUE(message_id, attachment_id));
CREATE INDEX chat_handle_join_idx_handle_id ON chat_handle_join(handle_id);
CREATE INDEX chat_idx_chat_identifier ON chat(chat_identifier);
CREATE INDEX chat_message_join_idx_chat_id ON chat_message_join(chat_id);
CREATE INDEX chat_message_join_idx_message_id_only ON chat_message_join(message_id);
CREATE INDEX chat_message_join_idx_message_date_id_chat_id ON chat_message_join(chat_id, message_date, message_id);
CREATE INDEX message_attachment_join_idx_attachment_id ON message_attachment_join(attachment_id);
CREATE INDEX message_attachment_join_idx_message_id ON message_attachment_join(message_id);
CREATE INDEX message_idx_associated_message2 ON message(associated_message_guid) WHERE associated_message_guid IS NOT NULL;
CREATE INDEX message_idx_date ON message(date);
CREATE INDEX message_idx_handle ON message(handle_id, date);
CREATE INDEX message_idx_thread_originator_guid ON message(thread_originator_guid);
"""

MESSAGE_COLUMNS = (
    "ROWID", "guid", "text", "handle_id", "attributedBody", "service", "account", "account_guid", "date",
    "date_read", "date_delivered", "is_delivered", "is_finished", "is_from_me", "is_read", "is_sent",
    "cache_has_attachments", "cache_roomnames", "item_type", "other_handle", "group_title",
    "group_action_type", "associated_message_guid", "associated_message_type",
    "associated_message_range_length", "associated_message_emoji", "message_summary_info",
    "destination_caller_id", "thread_originator_guid", "thread_originator_part", "date_retracted",
    "date_edited", "part_count",
)
_INSERT_MESSAGE = (
    f"INSERT INTO message ({', '.join(MESSAGE_COLUMNS)}) VALUES ({', '.join('?' * len(MESSAGE_COLUMNS))})"
)

# ----------------------------------------------------------------------------- generation


def sample_size() -> int:
    """Messages in one pass of the script: the size of the bundled sample."""
    return sum(len(lines) for _, lines in SCENES)


def make_chatdb(
    path: str | Path,
    n_messages: int | None = None,
    seed: int = DEFAULT_SEED,
    start_rowid: int | None = None,
) -> Path:
    """Write `n_messages` messages (default: one pass of the script) into `path`.

    A new file gets the schema, handles and chats; an existing one is appended to,
    from `start_rowid` (default: after its last message). Message N is the same for
    a given seed whatever the starting point, so appending equals generating more.
    """
    path = Path(path)
    n_messages = sample_size() if n_messages is None else n_messages
    fresh = not path.exists()
    con = sqlite3.connect(path, isolation_level=None)
    try:
        con.execute("PRAGMA page_size = 4096")
        con.execute("PRAGMA journal_mode = DELETE")
        con.execute("PRAGMA synchronous = OFF")
        con.execute("BEGIN")
        if fresh:
            _create_schema(con)
        handle_ids = _ensure_handles(con)
        chat_ids = _ensure_chats(con, handle_ids)
        if start_rowid is None:
            start_rowid = (con.execute("SELECT MAX(ROWID) FROM message").fetchone()[0] or 0) + 1
        _write_messages(con, seed, start_rowid, n_messages, handle_ids, chat_ids)
        con.execute("COMMIT")
    finally:
        con.close()
    return path


def _create_schema(con: sqlite3.Connection) -> None:
    for statement in SCHEMA.split(";"):
        if statement.strip():
            con.execute(statement)
    con.execute("INSERT INTO _SqliteDatabaseProperties VALUES ('counter_in_add', '0')")


def _ensure_handles(con: sqlite3.Connection) -> dict[str, int]:
    ids = {}
    for rowid, (key, (handle, service)) in enumerate(HANDLES.items(), start=1):
        country = "us" if handle.startswith("+1") else None
        con.execute(
            "INSERT OR IGNORE INTO handle (ROWID, id, country, service, uncanonicalized_id, person_centric_id) "
            "VALUES (?, ?, ?, ?, ?, NULL)",
            (rowid, handle, country, service, handle.replace("+1", "") if country else None),
        )
        ids[key] = rowid
    return ids


def _ensure_chats(con: sqlite3.Connection, handle_ids: dict[str, int]) -> dict[str, int]:
    ids = {}
    for rowid, chat in enumerate(CHATS.values(), start=1):
        con.execute(
            "INSERT OR IGNORE INTO chat (ROWID, guid, style, state, account_id, chat_identifier, service_name, "
            "room_name, account_login, display_name, group_id, last_addressed_handle) "
            "VALUES (?, ?, ?, 3, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                rowid,
                chat.guid,
                43 if chat.is_group else 45,
                ACCOUNT_GUID,
                chat.identifier,
                chat.service,
                chat.identifier if chat.is_group else None,
                OWNER_ACCOUNT,
                chat.display_name,
                _uuid(random.Random(f"group:{chat.key}")),
                OWNER_PHONE,
            ),
        )
        for member in chat.members:
            con.execute("INSERT OR IGNORE INTO chat_handle_join VALUES (?, ?)", (rowid, handle_ids[member]))
        ids[chat.key] = rowid
    return ids


def _write_messages(con, seed, start_rowid, n_messages, handle_ids, chat_ids) -> None:
    stop = start_rowid + n_messages
    bodies: dict[tuple[str, int], bytes] = {}  # the same lines recur in big databases
    batch, joins, attachment_links = [], [], []
    for message in _history(seed):
        if message.rowid >= stop:
            break
        if message.rowid < start_rowid:
            continue
        batch.append(_message_row(message, handle_ids, bodies))
        joins.append((chat_ids[message.chat], message.rowid, message.date))
        if message.attachment is not None:
            attachment_links.append(message)
        if len(batch) >= 10_000:
            _flush(con, batch, joins, attachment_links)
    _flush(con, batch, joins, attachment_links)


def _flush(con, batch, joins, attachment_links) -> None:
    con.executemany(_INSERT_MESSAGE, batch)
    con.executemany("INSERT INTO chat_message_join VALUES (?, ?, ?)", joins)
    for message in attachment_links:
        attach, guid, size = message.attachment
        cursor = con.execute(
            "INSERT INTO attachment (guid, created_date, start_date, filename, uti, mime_type, transfer_state, "
            "is_outgoing, transfer_name, total_bytes, original_guid) VALUES (?, ?, 0, ?, ?, ?, 5, ?, ?, ?, ?)",
            (
                guid,
                message.date // NS,
                f"~/Library/Messages/Attachments/{guid[:2].lower()}/{guid[2:4].lower()}/{guid}/{attach.filename}",
                {"image/heic": "public.heic", "image/jpeg": "public.jpeg"}.get(attach.mime, "public.data"),
                attach.mime,
                int(message.who == "me"),
                attach.filename,
                size,
                guid,
            ),
        )
        con.execute("INSERT INTO message_attachment_join VALUES (?, ?)", (message.rowid, cursor.lastrowid))
    batch.clear()
    joins.clear()
    attachment_links.clear()


@dataclass
class _Message:
    rowid: int
    guid: str
    chat: str
    who: str
    text: str | None
    date: int  # nanoseconds since 2001
    kind: str = "text"  # text | reaction | attachment | edited | unsent | rename | added
    tap: Tap | None = None
    target: _Message | None = None
    attachment: tuple[Attach, str, int] | None = None
    edit: Edit | None = None
    title: str | None = None
    added: str | None = None
    thread: _Message | None = None


def _history(seed: int) -> Iterator[_Message]:
    """The endless message stream: the script over and over, time moving on."""
    rng = random.Random(seed)
    clock = int((START - APPLE_EPOCH).total_seconds()) * NS + rng.randrange(NS)
    rowid = 0
    # The first pass is the sample: a scene every few hours. Later passes (large
    # benchmark databases) pack scenes closer, so a million messages span ~20 years
    # instead of overflowing Messages' 64-bit nanosecond dates.
    gap_seconds = (3 * 3600, 30 * 3600)
    while True:
        for chat, lines in SCENES:
            clock += rng.randrange(*gap_seconds) * NS
            said: list[_Message] = []
            for who, line in lines:
                rowid += 1
                long_text = isinstance(line, str) and len(line) > 200
                clock += rng.randrange(60 if long_text else 8, 400 if long_text else 240) * NS
                clock += rng.randrange(NS)  # Messages keeps sub-second precision
                message = _Message(rowid, _uuid(rng), chat, who, None, clock)
                _apply(message, line, said, rng)
                if message.kind in ("text", "attachment", "edited"):
                    said.append(message)
                yield message
        gap_seconds = (120, 2 * 3600)


def _apply(message: _Message, line: object, said: list[_Message], rng: random.Random) -> None:
    if isinstance(line, str):
        message.text = line
    elif isinstance(line, Reply):
        message.text = line.text
        message.thread = said[-line.back]
    elif isinstance(line, Tap):
        message.kind, message.tap = "reaction", line
        message.target = said[-line.back]
        message.text = _reaction_text(line, message.target)
    elif isinstance(line, Attach):
        message.kind = "attachment"
        message.text = "\ufffc" + line.caption
        message.attachment = (line, _uuid(rng), rng.randrange(200_000, 4_000_000))
    elif isinstance(line, Edit):
        message.kind, message.edit, message.text = "edited", line, line.edited
    elif isinstance(line, Unsend):
        message.kind = "unsent"
        message.edit = Edit(line.original, "")
    elif isinstance(line, Rename):
        message.kind, message.title = "rename", line.title
    elif isinstance(line, Added):
        message.kind, message.added = "added", line.who
    else:
        raise TypeError(f"unknown script line {line!r}")


def _reaction_text(tap: Tap, target: _Message) -> str:
    quoted = "an image" if target.kind == "attachment" and target.text == "\ufffc" else f"“{target.text}”"
    if tap.emoji:
        return f"Reacted {tap.emoji} to {quoted}"
    return f"{REACTION_WORDS[tap.type]} {quoted}"


def _message_row(m: _Message, handle_ids: dict[str, int], bodies: dict) -> tuple:
    chat = CHATS[m.chat]
    from_me = m.who == "me"
    if from_me:
        handle_id = 0 if chat.is_group else handle_ids[chat.members[0]]
    else:
        handle_id = handle_ids[m.who]
    text, body = m.text, None
    if text is not None and m.rowid > TEXT_ONLY_UNTIL:
        body = bodies.get((text, 0))
        if body is None:
            body = bodies[(text, 0)] = encode_attributed_body(text)
        if m.rowid > TEXT_AND_BODY_UNTIL:
            text = None
    summary = date_edited = date_retracted = None
    if m.kind == "edited":
        date_edited = m.date + 41 * NS + 250_000_000
        summary = _edit_summary(m.edit, m.date, date_edited)
    elif m.kind == "unsent":
        date_retracted = m.date + 37 * NS + 125_000_000
        summary = _unsent_summary(m.edit.original)
    elif m.rowid % 3 == 0:
        # Most messages on a current Mac carry a summary with bookkeeping keys only.
        summary = plistlib.dumps({"amc": 1, "ust": True}, fmt=plistlib.FMT_BINARY, sort_keys=True)
    tap, target = m.tap, m.target
    return (
        m.rowid,
        m.guid,
        text,
        handle_id,
        body,
        chat.service,
        OWNER_ACCOUNT,
        ACCOUNT_GUID,
        m.date,
        0 if from_me else m.date + 5 * NS,
        m.date + 2 * NS if from_me else 0,
        1,
        1,
        int(from_me),
        int(not from_me),
        int(from_me),
        int(m.attachment is not None),
        chat.identifier if chat.is_group else None,
        {"rename": 2, "added": 1}.get(m.kind, 0),
        handle_ids[m.added] if m.added else 0,
        m.title,
        0,
        f"p:0/{target.guid}" if target else None,
        tap.type if tap else 0,
        len(target.text or "") if target else 0,
        tap.emoji if tap else None,
        summary,
        OWNER_PHONE,
        m.thread.guid if m.thread else None,
        f"0:0:{len(m.thread.text or '')}" if m.thread else None,
        date_retracted or 0,
        date_edited or 0,
        None if m.kind in ("reaction", "rename", "added", "unsent") else 1,
    )


def _edit_summary(edit: Edit, sent: int, edited: int) -> bytes:
    versions = [
        {"d": sent / NS, "t": encode_attributed_body(edit.original)},
        {"d": edited / NS, "t": encode_attributed_body(edit.edited)},
    ]
    summary = {
        "amc": 0,
        "ec": {"0": versions},  # every version of part 0, oldest first
        "ep": [0],  # edited parts
        "otr": {"0": {"le": len(edit.original), "lo": 0}},  # original text ranges
        "ust": True,
    }
    return plistlib.dumps(summary, fmt=plistlib.FMT_BINARY, sort_keys=True)


def _unsent_summary(original: str) -> bytes:
    summary = {"amc": 0, "otr": {"0": {"le": len(original), "lo": 0}}, "rp": [0], "ust": True}
    return plistlib.dumps(summary, fmt=plistlib.FMT_BINARY, sort_keys=True)


def _uuid(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032X}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m etl.samples.make_chatdb", description="Write a synthetic Messages chat.db."
    )
    parser.add_argument("output", type=Path)
    parser.add_argument("--messages", type=int, default=None, help=f"default: {sample_size()}, one pass of the script")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--start-rowid", type=int, default=None, help="append to OUTPUT from this message ROWID")
    parser.add_argument("--force", action="store_true", help="replace OUTPUT instead of appending to it")
    args = parser.parse_args(argv)
    if args.force:
        args.output.unlink(missing_ok=True)
    make_chatdb(args.output, args.messages, args.seed, args.start_rowid)
    print(args.output)


if __name__ == "__main__":
    main()
