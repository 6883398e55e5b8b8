"""Guardrail detectors, masking, the stream window and the policies' configuration: each
detector on what it must find and on near-misses it must leave alone; a secret split at any
place across any number of stream events never leaves the window unmasked; regular
expressions that backtrack catastrophically are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extproc.config import ConfigError, parse_gateway
from extproc.guardrails.detectors import BUILTIN, deny_list_detector, pattern_problem
from extproc.guardrails.policy import Policy, Screen, Verdicts
from extproc.guardrails.scan import Window, find, masked
from extproc.guardrails.walk import rewrite_texts, texts_of
from extproc.pipeline.stream_screen import StreamScreen
from extproc.translators.ir import Finish, StreamStart, TextDelta, ToolArgumentsDelta

FOUND = {
    "email": ["mail jane.doe+x@mail.example.co.uk now", "a@b.io"],
    "phone": ["call +1 415 555 0100", "call +44 20 7946 0958", "(415) 555-0100", "415-555-0100"],
    "credit_card": [
        "4111 1111 1111 1111",
        "5500-0000-0000-0004",
        "378282246310005",
        "card 4111 1111 1111 1111 55",  # more digits after it
        "call 12 5500-0000-0000-0004",  # and before it
    ],
    "iban": ["DE89 3704 0044 0532 0130 00", "GB82WEST12345698765432"],
    "us_ssn": ["ssn 123-45-6789"],
    "ip_address": [
        "host 10.0.0.1 down",
        "::1 is not, but 2001:0db8:0000:0000:0000:ff00:0042:8329 is",
    ],
    "credentials": [
        "sk-proj-abcdefghijklmnopqrstuvwxyz012345",
        "sk-ant-api03-abcdefghijklmnopqrstuvwxyz",
        "AKIAIOSFODNN7EXAMPLE",
        "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NSJ9.c2lnbmF0dXJlLXZhbHVl",
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk=\n-----END OPENSSH PRIVATE KEY-----",
        "AIzaSyA-abcdefghijklmnopqrstuvwxyz01234",
    ],
}
NEAR_MISSES = {
    "email": ["user@localhost", "x = obj@decorator", "@mention", "name@"],
    "phone": ["version 1.2.3", "id 12345", "2024-10-21"],
    "credit_card": ["4111 1111 1111 1112", "1234567890123", "order 4111-1111", "41111111111111112"],
    "iban": ["DE89 3704 0044 0532 0130 01", "AB12"],
    "us_ssn": ["000-12-3456", "666-12-3456", "123-00-4567", "123-45-0000", "1234-56-789"],
    "ip_address": ["999.1.1.1", "1.2.3", "version 1.2.3.4.5"],
    "credentials": ["sk-short", "AKIA1234", "eyJhbGciOiJIUzI1NiJ9", "-----BEGIN PUBLIC KEY-----"],
}


@pytest.mark.parametrize(("name", "text"), [(n, t) for n, ts in FOUND.items() for t in ts])
def test_each_detector_finds_what_it_looks_for(name: str, text: str) -> None:
    matches = find([BUILTIN[name]], text)
    assert matches, text
    assert BUILTIN[name].placeholder in masked(text, matches)


@pytest.mark.parametrize(("name", "text"), [(n, t) for n, ts in NEAR_MISSES.items() for t in ts])
def test_each_detector_leaves_near_misses_alone(name: str, text: str) -> None:
    assert find([BUILTIN[name]], text) == []


def test_a_deny_list_matches_whole_words_whatever_their_case_and_spacing() -> None:
    words = deny_list_detector("deny", ["project falcon", "zeta"], placeholder="[DENIED]")
    text = "The PROJECT\n falcon and Zeta."
    assert masked(text, find([words], text)) == "The [DENIED] and [DENIED]."
    assert find([words], "projects falconry zetas") == []


@pytest.mark.parametrize(
    "pattern", ["(a+)+", r"(\w*)*x", "(?:ab|c+)*d", "([a-z]+){2,}", r"((\d+)\s?)+"]
)
def test_patterns_that_backtrack_catastrophically_are_refused(pattern: str) -> None:
    assert "nests unbounded repetition" in (pattern_problem(pattern) or "")


@pytest.mark.parametrize("pattern", [r"TCK-\d{6}", "(ab){2,}", r"[(]a+[)]+", r"(\d{3}-)?\d{4}"])
def test_ordinary_patterns_are_accepted(pattern: str) -> None:
    assert pattern_problem(pattern) is None


SECRETS = [
    "4111 1111 1111 1111",
    "jane.doe@example.com",
    "AKIAIOSFODNN7EXAMPLE",
    "DE89 3704 0044 0532 0130 00",
    "+1 415 555 0100",
    "-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9\n"
    "-----END RSA PRIVATE KEY-----",
]


@settings(max_examples=300, deadline=None)
@given(
    secret=st.sampled_from(SECRETS),
    before=st.sampled_from(["", "Here: ", "x ", "x\n", "call 12 "]),
    after=st.sampled_from(["", " done.", ", and more text", " 55"]),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=6),
)
def test_a_secret_split_anywhere_across_events_never_leaves_the_window(
    secret: str, before: str, after: str, cuts: list[int]
) -> None:
    text = before + secret + after
    places = sorted({cut % (len(text) + 1) for cut in cuts})
    pieces = [text[a:b] for a, b in zip([0, *places], [*places, len(text)], strict=True)]
    window = Window(list(BUILTIN.values()))
    out = []
    for piece in pieces:
        released, matches = window.feed(piece)
        out.append(masked(released, matches))
    released, matches = window.flush()
    out.append(masked(released, matches))
    streamed = "".join(out)
    assert secret not in streamed
    assert streamed == masked(text, find(list(BUILTIN.values()), text))


def test_ordinary_text_leaves_the_window_at_each_word_end() -> None:
    window = Window(list(BUILTIN.values()))
    released = [window.feed(word)[0] for word in ["Hello ", "there, ", "how ", "are ", "you"]]
    assert released == ["Hello ", "there, ", "how ", "are ", ""]
    assert window.flush()[0] == "you"


def policy(output: str = "mask", *detectors: str) -> Policy:
    return Policy(
        "p", tuple(BUILTIN[name] for name in detectors or ("email",)), None, "off", output
    )  # type: ignore[arg-type]


def test_a_stream_screen_keeps_event_order_across_text_and_tool_arguments() -> None:
    screen = StreamScreen(Screen([policy("mask", "email")], "output"))
    events = screen.feed(
        [
            StreamStart("id", "m"),
            TextDelta("write jane"),
            ToolArgumentsDelta(0, '{"to": "a@b'),
            ToolArgumentsDelta(0, '.io"}'),
            Finish("tool_calls"),
        ]
    )
    assert events == [
        StreamStart("id", "m"),
        TextDelta("write "),
        TextDelta("jane"),
        ToolArgumentsDelta(0, '{"to": "'),
        ToolArgumentsDelta(0, '[EMAIL]"}'),
        Finish("tool_calls"),
    ]
    assert [d.action for d in screen.verdicts.decisions] == ["mask"]


def test_masking_a_request_keeps_ids_signatures_data_and_tool_definitions() -> None:
    body = {
        "model": "a@b.io",
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "mail a@b.io"}]},
            {"role": "user", "content": [{"type": "image", "source": {"data": "a@b.io"}}]},
        ],
        "tools": [{"name": "t", "description": "mail a@b.io"}],
        "thinking_block": {"signature": "a@b.io"},
        "image": "data:image/png;base64,a@b.io",
    }
    verdicts = Verdicts()
    screen = Screen([Policy("p", (BUILTIN["email"],), None, "mask", "off")], "input")
    masked_body = rewrite_texts(body, lambda text: screen.apply(text, verdicts))
    assert masked_body["messages"][0]["content"][0]["text"] == "mail [EMAIL]"
    unchanged = {**masked_body, "messages": [body["messages"][0], *masked_body["messages"][1:]]}
    assert unchanged == body
    assert texts_of(body) == ["mail a@b.io"]


POLICIES = """
providers:
  openai: {kind: openai, base_url: https://api.openai.com, api_key: "${env:K}"}
models:
  m: {provider: openai, model: gpt-4o, guardrails: [pii]}
guardrails:
  pii:
    detectors: [email]
    patterns:
      bad: {regex: "(a+)+b"}
    input: mask
    output: off
teams:
  t: {guardrails: [missing]}
keys:
  - {id: k, sha256: "%s", models: ["*"], guardrails: [pii, nope]}
""" % ("0" * 64)


def test_configuration_names_bad_patterns_and_unknown_policies() -> None:
    with pytest.raises(ConfigError) as raised:
        parse_gateway(POLICIES, source=Path("gw.yaml"), environ={"K": "x"})
    problems = dict(raised.value.problems)
    assert "nests unbounded repetition" in problems["guardrails.pii.patterns.bad.regex"]
    assert "unknown guardrail 'missing'" in problems["teams.t.guardrails.0"]
    assert "unknown guardrail 'nope'" in problems["keys.0.guardrails.1"]


def test_a_callers_policies_are_its_own_its_teams_and_its_models_once_each() -> None:
    text = POLICIES.replace("(a+)+b", "ab+").replace("missing", "pii").replace(", nope", "")
    text = text.replace('models: ["*"]', 'models: ["*"], team: t')
    gateway = parse_gateway(text, source=Path("gw.yaml"), environ={"K": "x"})
    principal = gateway.principals["0" * 64]
    assert [p.name for p in gateway.policies(principal, gateway.models["m"])] == ["pii"]
    assert (gateway.guardrails["pii"].input, gateway.guardrails["pii"].output) == ("mask", "off")
