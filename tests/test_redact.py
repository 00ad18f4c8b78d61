"""redact_secrets: typed placeholders, the redactions column, look-alikes, idempotence."""

from __future__ import annotations

import re

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from etl.transforms import redact as R
from etl.transforms.redact import (
    PII_PATTERNS,
    SECRET_PATTERNS,
    is_card_number,
    luhn_valid,
    redact_secrets,
    redact_str,
)

# (type, text around the secret with {} where it goes, the secret itself). The secret
# must be gone from the output and replaced by exactly one placeholder of that type.
PLANTED = [
    ("openai_api_key", "key {} ok", "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7cDe0fGh"),
    ("openai_api_key", "OPENAI_API_KEY={}", "sk-" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8S9t0U1v2W3x4"),
    ("openai_api_key", "{}", "sk-svcacct-Zx9_Yw8-Vu7Ts6Rq5Po4Nm3Lk2Jh1"),
    ("anthropic_api_key", "export ANTHROPIC_API_KEY='{}'", "sk-ant-api03-Qw3Er4Ty5Ui6Op7As8Df9Gh0Jk1Lz2Xc3Vb4N-Ab_c"),
    ("aws_access_key", "aws_access_key_id = {}", "AKIAIOSFODNN7EXAMPLE"),
    ("aws_access_key", "temporary {} creds", "ASIAY34FZKBOKMUTVV7A"),
    ("aws_secret_key", "aws_secret_access_key = {}", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
    ("aws_secret_key", 'AWS_SECRET_ACCESS_KEY="{}"', "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY"),
    ("github_token", "token {}", "ghp_aaaaaaaaaaB1c2D3e4F5g6H7i8J9k0L1m2N3"),
    ("github_token", "{}", "gho_16C7e42F292c6912E7710c838347Ae178B4a"),
    ("github_token", "pat {} here", "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVW"),
    ("gitlab_token", "{}", "glpat-AbCdEfGhIjKlMnOpQrSt"),
    ("slack_token", "bot {}", "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"),
    ("slack_token", "{}", "xoxp-123456789012-123456789012-123456789012-abcdef0123456789abcdef0123456789"),
    ("slack_webhook", "post to {} please", "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"),
    ("stripe_key", "{}", "sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
    ("stripe_key", "{}", "rk_live_51H8abcdefghijklmnop"),
    ("stripe_key", "test key {}", "sk_test_4eC39HqLyjWDarjtT1zdp7dc"),
    ("google_api_key", "maps {}", "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q"),
    ("google_oauth_token", "{}", "ya29.a0AfH6SMBx1Yc2Zd3Ae4Bf5Cg6Dh7Ei8Fj9Gk0Hl"),
    ("huggingface_token", "HF_TOKEN {}", "hf_AbCdEfGhIjKlMnOpQrStUvWxYz01234567"),
    ("npm_token", "//registry.npmjs.org/:_authToken {}", "npm_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"),
    ("pypi_token", "{}", "pypi-AgEIcHlwaS5vcmc" + "CJGE4MjU3ZGU0LTk5YjctNDk0Yi1hYzQ0LTg0YjQ3YjNhYWE0YQ"),
    ("sendgrid_api_key", "{}", "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"),
    ("twilio_api_key", "{}", "SK0123456789abcdef0123456789abcdef"),
    ("mailgun_api_key", "{}", "key-0123456789abcdef0123456789abcdef"),
    ("mailchimp_api_key", "{}", "0123456789abcdef0123456789abcdef-us21"),
    ("digitalocean_token", "{}", "dop_v1_" + "a1" * 32),
    ("shopify_token", "{}", "shpat_0123456789abcdef0123456789abcdef"),
    ("telegram_bot_token", "https://api.telegram.org/bot{}/getMe", "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0"),
    ("discord_bot_token", "DISCORD_TOKEN={}", "MTA4NjY5NzU3ODU2NTI2MzQ4OA.GxYz12.abcdefghijklmnopqrstuvwxyz0123456789"),
    ("square_token", "{}", "sq0atp-" + "a1B2" * 6),
    ("databricks_token", "{}", "dapi" + "0123456789abcdef" * 2),
    ("azure_storage_key", "DefaultEndpointsProtocol=https;AccountKey={};EndpointSuffix=core", "A" * 86 + "=="),
    ("jwt", "cookie={}", "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV"),
    ("bearer_token", "Authorization: Bearer {}", "mF_9.B5f-4.1JqM1234567890abcdef"),
    ("bearer_token", "use bearer {} for now", "0123456789abcdefABCDEF"),
    ("basic_auth", "Authorization: Basic {}", "dXNlcjpodW50ZXIyMjI="),
    ("url_password", "DATABASE_URL=postgres://admin:{}@db.internal:5432/prod", "hunter2!x"),
    ("url_password", "clone https://bob:{}@github.com/x/y.git", "ghs-Token.123"),
    ("password_assignment", "password={}", "hunter2"),
    ("password_assignment", 'config: {{"db_password": "{}"}}', "correct horse"),
    ("password_assignment", "PASSWD: {}", "s3cr3t!"),
    ("password_assignment", "mysql -u root --pwd={}", "toor1234"),
    ("password_assignment", "api_key={}", "abc123def456ghi"),
    ("password_assignment", "SECRET_KEY = {}", "django-insecure-0a9s8d7f6g5h4j3k"),
    ("password_assignment", "client_secret: {}", "9f8e7d6c5b4a3f2e1d0c"),
    ("password_assignment", "?token={}&x=1", "a1b2c3d4e5f6"),
    ("private_key", "key:\n{}\nbye", "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7V0x\nQW1oZ3M=\n-----END RSA PRIVATE KEY-----"),
    ("private_key", "{}", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----"),
    (
        "private_key",
        '{{"type": "service_account", "private_key": "{}", "client_email": "x"}}',
        "-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\\n-----END PRIVATE KEY-----",
    ),
    ("private_key", "pasted half: {}", "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkg4LVWM9nuwNSk3yByxZpYRTBnVJk5"),
    ("credit_card", "card {} exp 12/29", "4111 1111 1111 1111"),
    ("credit_card", "{}", "5555-5555-5555-4444"),
    ("credit_card", "amex {}", "378282246310005"),
    ("credit_card", "{}", "4012888888881881"),
]

# Things that look like secrets and must come back unchanged.
LOOK_ALIKES = [
    "commit a94a8fe5ccb19ba61c4c0873d391e987982fbbd3 fixed it",
    "request id 123e4567-e89b-12d3-a456-426614174000",
    "supercalifragilisticexpialidocious",
    "not a card: 4111 1111 1111 1112",
    "tracking 1234567812345678",
    "deployed at 2024-01-15T10:30:00Z",
    "2024-01-15 10:30:00",
    "version v1.2.3 and build 10.0.19041.1234",
    "a version 1.2.3.4.5 is no address",
    "std::vector<int> and a::b",
    "order #4155550134 ships at 10:30:00",
    "IBAN-like DE00 0000 0000 0000 0000 00 fails its check",
    "secret: tomorrow",
    "the bearer of bad news",
    "risk-assessment-for-the-new-project-plan",
    "my password is hunter2",
    "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "see https://example.com:8080/path?page=2&sort=asc",
    "key-value store",
    "price 1,299.00 on Jan 5 2024, order #123456789",
    "[SECRET:openai_api_key] and [PII:email] stay as they are",
    "call me at 5:30",
]

PII_PLANTED = [
    ("email", "mail {} now", "jane.doe+tag@example.co.uk"),
    ("phone", "call {}", "+1 415 555 0134"),
    ("phone", "call {}", "+14155550134"),
    ("phone", "ring {} later", "(415) 555-0134"),
    ("phone", "{}", "415-555-0134"),
    ("phone", "uk {}", "+44 20 7946 0958"),
    ("phone", "uk {}", "020 7946 0958"),
    ("phone", "fr {}", "06 12 34 56 78"),
    ("phone", "de {}", "0049 30 12345678"),
    ("iban", "pay to {} by Friday", "DE89 3704 0044 0532 0130 00"),
    ("iban", "{}", "GB82WEST12345698765432"),
    ("ip_address", "ip {}", "192.168.100.200"),
    ("ip_address", "server at {} is down", "2001:db8::8a2e:370:7334"),
]

# National forms are read as written in the owner's country.
REGIONAL = [
    ("DE", "Handy {} ab 18 Uhr", "0151 23456789"),
    ("IN", "call {}", "98765 43210"),
    ("JP", "電話 {} まで", "090-1234-5678"),
    ("BR", "me liga {}", "(11) 91234-5678"),
    ("AU", "mob {}", "0412 345 678"),
    ("US", "text {}", "415 555 0134"),
    ("US", "from abroad {}", "0049 30 12345678"),
]


@pytest.mark.parametrize(("region", "template", "value"), REGIONAL)
def test_phone_numbers_in_the_owners_national_format(region, template, value):
    out, found = redact_str(template.format(value), pii=True, region=region)
    assert out == template.format("[PII:phone]") and found == ["phone"]


def test_a_national_number_of_another_country_is_read_in_the_owners():
    # 98765 43210 is an Indian mobile; read as German it is no number.
    assert redact_str("98765 43210", pii=True, region="DE") == ("98765 43210", [])


@pytest.mark.parametrize(("kind", "template", "secret"), PLANTED, ids=[f"{k}-{i}" for i, (k, *_) in enumerate(PLANTED)])
def test_planted_secret_is_replaced(kind, template, secret):
    text = template.format(secret)
    out, found = redact_str(text)
    assert secret not in out
    assert out.count(f"[SECRET:{kind}]") == 1
    assert found == [kind]
    # The text around the secret survives: only the secret changed.
    assert out == template.format(f"[SECRET:{kind}]")
    # Idempotent: nothing left to find.
    assert redact_str(out) == (out, [])


@pytest.mark.parametrize("text", LOOK_ALIKES)
@pytest.mark.parametrize("pii", [False, True])
def test_look_alikes_survive(text, pii):
    assert redact_str(text, pii=pii) == (text, [])


@pytest.mark.parametrize(("kind", "template", "value"), PII_PLANTED)
def test_pii_only_when_asked(kind, template, value):
    text = template.format(value)
    assert redact_str(text) == (text, [])
    out, found = redact_str(text, pii=True)
    assert out == template.format(f"[PII:{kind}]") and found == [kind]
    assert redact_str(out, pii=True) == (out, [])


def test_ssh_remote_is_not_a_secret():
    text = "git clone git@github.com:org/repo.git"
    assert redact_str(text) == (text, [])
    assert redact_str(text, pii=True) == ("git clone [PII:email]:org/repo.git", ["email"])  # address-shaped


def test_url_password_keeps_user_and_host():
    out, _ = redact_str("mongodb+srv://app_user:p%40ss%3Aword@cluster0.mongodb.net/db")
    assert out == "mongodb+srv://app_user:[SECRET:url_password]@cluster0.mongodb.net/db"


def test_several_secrets_in_one_message_each_listed():
    text = "a AKIAIOSFODNN7EXAMPLE b AKIAIOSFODNN7EXAMPL2 c password=hunter2 d 4111111111111111"
    out, found = redact_str(text)
    assert out == (
        "a [SECRET:aws_access_key] b [SECRET:aws_access_key] c password=[SECRET:password_assignment] "
        "d [SECRET:credit_card]"
    )
    assert sorted(found) == ["aws_access_key", "aws_access_key", "credit_card", "password_assignment"]


def test_frame_columns_and_rows():
    frame = pl.DataFrame(
        {
            "source_id": ["1", "2", "3", "4"],
            "text": ["hi AKIAIOSFODNN7EXAMPLE", "nothing here", None, "x"],
            "prompt": ["password: hunter22", None, "sk-ant-abcdefghijklmnopqrstuvwxyz012", "y"],
            "drop_reason": [None, None, "empty", None],
        }
    )
    out = redact_secrets(frame.lazy()).collect()
    assert out["source_id"].to_list() == ["1", "2", "3", "4"]
    assert out.schema["redactions"] == pl.List(pl.String)
    assert out["text"].to_list() == ["hi [SECRET:aws_access_key]", "nothing here", None, "x"]
    assert out["prompt"].to_list() == frame["prompt"].to_list()  # not asked to look there
    assert out["redactions"].to_list() == [["aws_access_key"], [], [], []]
    assert out["drop_reason"].to_list() == [None, None, "empty", None]

    # A second call on other columns extends the list; a repeat adds nothing.
    again = redact_secrets(out.lazy(), columns=("text", "prompt")).collect()
    assert again["prompt"].to_list() == [
        "password: [SECRET:password_assignment]", None, "[SECRET:anthropic_api_key]", "y"
    ]
    assert again["redactions"].to_list() == [["aws_access_key", "password_assignment"], [], ["anthropic_api_key"], []]
    assert redact_secrets(again.lazy(), columns=("text", "prompt")).collect().equals(again)


def test_missing_column_is_an_error():
    with pytest.raises(KeyError):
        redact_secrets(pl.DataFrame({"text": ["x"]}).lazy(), columns=("prompt",))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5555-5555-5555-4444 1", "[SECRET:credit_card] 1"),
        ("4111 1111 1111 1111 2024", "[SECRET:credit_card] 2024"),
        ("12 4111 1111 1111 1111", "12 [SECRET:credit_card]"),
        ("4111111111111111 4012888888881881", "[SECRET:credit_card] [SECRET:credit_card]"),
        ("4111 1111 1111 1112 2024", "4111 1111 1111 1112 2024"),
        ("0" * 26 + " 5555-5555-5555-4444", "0" * 26 + " [SECRET:credit_card]"),
    ],
)
def test_card_inside_a_longer_run_of_digits(text, expected):
    out, found = redact_str(text)
    assert out == expected
    assert found == ["credit_card"] * expected.count("[SECRET:credit_card]")


def test_luhn():
    assert luhn_valid("4111111111111111") and luhn_valid("79927398713")
    assert not luhn_valid("4111111111111112")
    assert is_card_number("4111-1111-1111-1111")
    assert not is_card_number("1234567812345670")  # Luhn-valid, but no card network starts with 1
    assert not is_card_number("411111111111")  # too short


def test_pattern_table_is_consistent():
    names = {p.name for p in SECRET_PATTERNS + PII_PATTERNS}
    for pattern in SECRET_PATTERNS + PII_PATTERNS:
        groups = set(re.findall(r"\(\?P<(\w+)>", pattern.pattern))
        if pattern.group == "0":
            assert groups == set(), pattern.name
        else:
            assert pattern.group == "secret" and groups <= {"pre", "secret", "post"} and "secret" in groups
    # No placeholder can be taken for a secret: that is what makes redaction idempotent.
    placeholders = [f"[{kind}:{name}]" for name in names for kind in ("SECRET", "PII")]
    texts = pl.DataFrame({"t": [" ".join(placeholders), "\n".join(placeholders), "".join(placeholders)]})
    for pattern in SECRET_PATTERNS + PII_PATTERNS:
        assert not texts.select(pl.col("t").str.contains(pattern.pattern).any()).item(), pattern.name


def test_every_type_has_a_planted_example():
    planted = {kind for kind, *_ in PLANTED} | {kind for kind, *_ in PII_PLANTED}
    assert {p.name for p in SECRET_PATTERNS + PII_PATTERNS} == planted


SURROUNDING = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30
) | st.sampled_from(["", "hey", "see:", "ok 👍", "line\nbreak", "café", "“quoted”", "(", "<"])


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(before=SURROUNDING, after=SURROUNDING, planted=st.sampled_from(PLANTED + PII_PLANTED))
def test_planted_secret_never_survives(before, after, planted):
    kind, template, secret = planted
    text = f"{before} {template.format(secret)} {after}"
    out, found = redact_str(text, pii=True)
    assert secret not in out
    assert kind in found
    assert redact_str(out, pii=True) == (out, [])


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.tuples(SURROUNDING, st.sampled_from(PLANTED + PII_PLANTED), SURROUNDING), min_size=1, max_size=8))
def test_hint_never_hides_a_secret(rows):
    """The pre-filter is only an optimisation: running every pattern on every row gives
    the same result."""
    texts = [f"{a} {template.format(secret)} {b}" for a, (_, template, secret), b in rows] + ["plain", ""]
    frame = pl.DataFrame({"text": texts})
    fast = redact_secrets(frame.lazy(), pii=True).collect()
    slow = R._redact_rows(frame, ("text",), pii=True)
    assert fast["text"].to_list() == slow["text"].to_list()
    assert fast["redactions"].to_list() == slow["redactions"].to_list()


def test_empty_frame():
    out = redact_secrets(pl.DataFrame({"text": []}, schema={"text": pl.String}).lazy(), pii=True).collect()
    assert out.height == 0 and out.schema["redactions"] == pl.List(pl.String)
