"""Configuration loading: what is accepted, and errors that name the file and the path."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from extproc.cli import main
from extproc.config import ConfigError, load_gateway, parse_gateway
from extproc.config.address import worker_addresses
from extproc.config.schema import PLAINTEXT_REFUSED
from extproc.errors import Unauthenticated
from extproc.pipeline.auth import authenticate, digest_key
from extproc.pipeline.key_format import SCANNER_PATTERN, has_valid_checksum

ROOT = Path(__file__).resolve().parents[2]
DIGEST = "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"
VALID = f"""
providers:
  openai:
    kind: openai
    base_url: https://api.openai.com
    api_key: ${{env:OPENAI_API_KEY}}
models:
  gpt-4o: {{provider: openai, model: gpt-4o, options: {{max_tokens: 512}}}}
  fast:
    targets:
      - {{provider: openai, model: gpt-4o-mini, weight: 80}}
      - {{provider: openai, model: gpt-4.1-nano, weight: 20}}
keys:
  - {{id: app, sha256: {DIGEST}, models: [gpt-4o, fast], team: search}}
"""
ENV = {"OPENAI_API_KEY": "sk-secret-value"}


def problems(text: str, environ: dict[str, str] | None = None) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as raised:
        parse_gateway(text, source=Path("gw.yaml"), environ=ENV if environ is None else environ)
    assert str(raised.value).startswith("gw.yaml: ")
    return raised.value.problems


def test_valid_configuration_compiles() -> None:
    gateway = parse_gateway(VALID, source=Path("gw.yaml"), environ=ENV)

    provider = gateway.providers["openai"]
    assert (provider.scheme, provider.host, provider.port, provider.tls) == (
        "https",
        "api.openai.com",
        443,
        True,
    )
    assert provider.api_key is not None and provider.api_key.reveal() == "sk-secret-value"
    assert gateway.models["gpt-4o"].targets[0].options == {"max_tokens": 512}
    assert gateway.models["fast"].cumulative_weights == (80, 100)
    principal = gateway.principals[DIGEST]
    assert (principal.key_id, principal.team) == ("app", "search")
    assert principal.may_use("fast") and not principal.may_use("other")


def test_secrets_never_print() -> None:
    gateway = parse_gateway(VALID, source=Path("gw.yaml"), environ=ENV)
    assert "sk-secret-value" not in repr(gateway)
    assert "sk-secret-value" not in str(gateway.providers["openai"].api_key)


@pytest.mark.parametrize(
    ("edit", "path", "message"),
    [
        (("kind: openai", "kind: openia"), "providers.openai.kind", "Input should be"),
        (("\nmodels:", "\nlisten: {prot: 1}\nmodels:"), "listen.prot", "unknown field"),
        (("team: search", "tem: search"), "keys.0.tem", "unknown field"),
        (("{provider: openai, model: gpt-4o,", "{provider: opena, model: gpt-4o,"),
         "models.gpt-4o.provider", "unknown provider 'opena'"),
        (("{provider: openai, model: gpt-4o-mini,", "{provider: nope, model: gpt-4o-mini,"),
         "models.fast.targets.0.provider", "unknown provider 'nope'"),
        (("models: [gpt-4o, fast]", "models: [gpt-4o, slow]"), "keys.0.models.1", "unknown model"),
        ((DIGEST, "abc"), "keys.0.sha256", "64 hexadecimal digits"),
        (("https://api.openai.com", "ftp://x"), "providers.openai.base_url", "http:// or https://"),
        (("${env:OPENAI_API_KEY}", "sk-literal-key"), "providers.openai.api_key", "reference"),
        (("weight: 80", "weight: -1"), "models.fast.targets.0.weight", "greater than or equal"),
        (("\nmodels:", "\nlisten: {max_request_body: 200MiB}\nmodels:"),
         "listen.max_request_body", "less than or equal to 134217728"),
    ],
)  # fmt: skip
def test_errors_name_the_path(edit: tuple[str, str], path: str, message: str) -> None:
    found = problems(VALID.replace(*edit))
    assert any(where == path and message in what for where, what in found), found


def test_missing_environment_variable_is_named_but_no_value_shown() -> None:
    found = problems(VALID, environ={})
    assert found == [("providers.openai.api_key", "environment variable OPENAI_API_KEY is not set")]


def test_duplicate_yaml_keys_are_refused() -> None:
    text = VALID.replace("  fast:", "  gpt-4o: {provider: openai, model: x}\n  fast:")
    assert "duplicate key 'gpt-4o'" in problems(text)[0][1]


def test_azure_needs_an_api_version() -> None:
    text = VALID.replace("kind: openai", "kind: azure")
    assert problems(text) == [("providers.openai", "azure providers need api_version")]


def test_bedrock_needs_a_region_and_no_key_and_defaults_to_its_regional_endpoint() -> None:
    bedrock = "    kind: bedrock\n    region: eu-west-1\n"
    openai = "    kind: openai\n    base_url: https://api.openai.com\n"
    no_url = VALID.replace(openai + "    api_key: ${env:OPENAI_API_KEY}\n", bedrock)
    gateway = parse_gateway(no_url, source=Path("gw.yaml"), environ={}, resolve_secrets=False)
    provider = gateway.providers["openai"]
    assert (provider.host, provider.tls) == ("bedrock-runtime.eu-west-1.amazonaws.com", True)
    without_region = no_url.replace("    region: eu-west-1\n", "")
    assert problems(without_region) == [("providers.openai", "bedrock providers need region")]
    with_key = VALID.replace("kind: openai", "kind: bedrock\n    region: eu-west-1")
    assert problems(with_key) == [
        ("providers.openai", "bedrock providers sign with AWS credentials, not an api_key")
    ]


def test_vertex_needs_a_project_and_a_location_and_defaults_to_its_regional_endpoint() -> None:
    openai = "    kind: openai\n    base_url: https://api.openai.com\n"
    key = "    api_key: ${env:OPENAI_API_KEY}\n"
    vertex = "    kind: vertex\n    project: p\n    location: europe-west4\n"
    gateway = parse_gateway(
        VALID.replace(openai + key, vertex),
        source=Path("gw.yaml"),
        environ={},
        resolve_secrets=False,
    )
    provider = gateway.providers["openai"]
    assert (provider.host, provider.publisher) == (
        "europe-west4-aiplatform.googleapis.com",
        "google",
    )
    no_location = VALID.replace(openai + key, "    kind: vertex\n    project: p\n")
    assert problems(no_location) == [
        ("providers.openai", "vertex providers need project and location")
    ]


def test_file_references_resolve_beside_the_config(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("sk-from-file\n")
    config = tmp_path / "gw.yaml"
    config.write_text(VALID.replace("${env:OPENAI_API_KEY}", "${file:key}"))

    api_key = load_gateway(config, environ={}).providers["openai"].api_key

    assert api_key is not None and api_key.reveal() == "sk-from-file"


def test_worker_addresses() -> None:
    assert worker_addresses("unix:/run/p.sock", 2) == [
        "unix:/run/p.sock.0",
        "unix:/run/p.sock.1",
    ]
    assert worker_addresses("127.0.0.1:50051", 2) == [
        "127.0.0.1:50051",
        "127.0.0.1:50052",
    ]


@pytest.mark.parametrize(
    ("address", "refused"),
    [
        ("unix:/run/extproc/extproc.sock", False),
        ("127.0.0.1:50051", False),
        ("[::1]:50051", False),
        ("0.0.0.0:50051", True),
        ("extproc-processor.extproc.svc:50051", True),
    ],
)
def test_a_processor_others_can_reach_needs_mtls_or_a_stated_mesh(
    address: str, refused: bool
) -> None:
    config = VALID + f"processor: {{address: '{address}'}}\n"
    if refused:
        assert problems(config) == [("processor", PLAINTEXT_REFUSED)]
    else:
        parse_gateway(config, source=Path("gw.yaml"), environ=ENV)
    plaintext = VALID + f"processor: {{address: '{address}', allow_plaintext: true}}\n"
    assert parse_gateway(plaintext, source=Path("gw.yaml"), environ=ENV).processor.allow_plaintext


def test_serve_refuses_plaintext_on_a_reachable_address(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", ENV["OPENAI_API_KEY"])
    config = tmp_path / "gw.yaml"
    config.write_text(VALID)
    # Refused before anything listens.
    assert main(["serve", "--config", str(config), "--address", "0.0.0.0:50051"]) == 2
    assert PLAINTEXT_REFUSED in capsys.readouterr().err


def test_validate_command_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(VALID.replace("kind: openai", "kind: nope"))

    assert main(["validate", str(ROOT / "examples" / "gateway.yaml")]) == 0
    assert main(["validate", str(broken)]) == 1
    assert "providers.openai.kind" in capsys.readouterr().err


def test_validate_says_what_memory_the_processor_needs_and_warns_below_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    example = str(ROOT / "examples" / "gateway.yaml")

    assert main(["validate", "--memory-limit", "1Gi", example]) == 0
    out = capsys.readouterr()
    assert "processor memory: needs about 208 MiB (1 worker, max_request_body 8 MiB)" in out.out
    assert "warning" not in out.err

    assert main(["validate", "--memory-limit", "128Mi", example]) == 0  # a warning, no failure
    assert "below what 1 worker(s) with max_request_body 8 MiB need (208 MiB)" in (
        capsys.readouterr().err
    )


def test_keys_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "hash", "password"]) == 0
    assert capsys.readouterr().out.strip() == DIGEST
    assert main(["keys", "new"]) == 0
    key_line, digest_line = capsys.readouterr().out.splitlines()
    key = key_line.split()[-1]
    assert SCANNER_PATTERN.fullmatch(key) and has_valid_checksum(key)
    # A mistyped key fails its checksum: a scanner tells it from a real one.
    typo = key[:10] + ("A" if key[10] != "A" else "B") + key[11:]
    assert SCANNER_PATTERN.fullmatch(typo) and not has_valid_checksum(typo)
    assert main(["keys", "hash", key]) == 0
    assert capsys.readouterr().out.strip() == digest_line.split()[-1]


ROTATED = """
providers:
  openai: {kind: openai, base_url: "https://api.openai.com", api_key: "${env:OPENAI_API_KEY}"}
models:
  gpt-4o: {provider: openai, model: gpt-4o}
key_files: keys.d
keys:
"""


def test_keys_come_from_a_directory_like_a_mounted_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-provider")
    keys = tmp_path / "keys.d"
    versions = keys / "..2026_12_05_10_00_00.1"  # how Kubernetes mounts a Secret
    versions.mkdir(parents=True)
    (versions / "bot").write_text(f"sha256: {digest_key('sk-bot')}\nmodels: [gpt-4o]\nteam: ci\n")
    (keys / "..data").symlink_to(versions.name)
    (keys / "bot").symlink_to("..data/bot")
    config = tmp_path / "gw.yaml"
    config.write_text(ROTATED + f"  - {{id: app, sha256: {digest_key('sk-app')}, models: ['*']}}\n")

    principals = load_gateway(config).principals

    assert {p.key_id for p in principals.values()} == {"app", "bot"}
    assert principals[digest_key("sk-bot")].team == "ci"


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        (
            "bot",
            "models: [gpt-4o]\n",
            ("key_files/bot", "give the key's sha256, or its digests (not both)"),
        ),
        (
            "bot",
            f"id: other\nsha256: {'a' * 64}\nmodels: [gpt-4o]\n",
            ("key_files/bot", "id 'other' differs from the file name"),
        ),
        (
            "bot",
            f"sha256: {'a' * 64}\nmodels: [gpt-9]\n",
            ("key_files/bot.models.0", "unknown model 'gpt-9'"),
        ),
        (
            "bot",
            f"sha256: {'a' * 64}\nmodels: [gpt-4o]\nmodels: [gpt-4o]\n",
            ("key_files/bot", None),
        ),
        (
            "bot",
            "just text",
            ("key_files/bot", "must hold the key's entry: a mapping with sha256, models, …"),
        ),
        (
            "app",
            f"sha256: {'a' * 64}\nmodels: [gpt-4o]\n",
            ("key_files/app.id", "duplicate key id 'app'"),
        ),
        ("b@d name", f"sha256: {'a' * 64}\nmodels: [gpt-4o]\n", ("key_files/b@d name.id", None)),
    ],
)
def test_a_bad_key_file_is_named(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    content: str,
    problem: tuple[str, str | None],
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-provider")
    (tmp_path / "keys.d").mkdir()
    (tmp_path / "keys.d" / name).write_text(content)
    config = tmp_path / "gw.yaml"
    config.write_text(ROTATED + f"  - {{id: app, sha256: {'b' * 64}, models: ['*']}}\n")
    with pytest.raises(ConfigError) as raised:
        load_gateway(config)
    [(where, message)] = raised.value.problems
    assert where == problem[0]
    assert problem[1] is None or message == problem[1]


def test_keys_rotate_prints_an_entry_where_both_keys_work_until_the_grace_ends(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-provider")
    (tmp_path / "keys.d").mkdir()
    (tmp_path / "keys.d" / "bot").write_text(f"sha256: {digest_key('sk-bot-old')}\nmodels: ['*']\n")
    config = tmp_path / "gw.yaml"
    config.write_text(
        ROTATED
        + f"  - {{id: app, sha256: {digest_key('sk-app-old')}, models: [gpt-4o], team: search}}\n"
    )
    started = time.time()

    assert main(["keys", "rotate", "app", "--config", str(config), "--grace", "2d"]) == 0
    out = capsys.readouterr().out
    new_app = out.split()[1]
    entry = out.split("expires_at):\n", 1)[1]
    config.write_text(ROTATED + "".join(f"  {line}\n" for line in entry.splitlines()))
    assert main(["keys", "rotate", "bot", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "The file bot in the key_files directory becomes" in out
    new_bot = out.split()[1]
    (tmp_path / "keys.d" / "bot").write_text(out.split("expires_at):\n", 1)[1])

    principals = load_gateway(config).principals

    def who(key: str, at: float) -> str:
        return authenticate({"authorization": [f"Bearer {key}"]}, principals, at).key_id

    for old, new, grace, name in (
        ("sk-app-old", new_app, 2 * 86400, "app"),
        ("sk-bot-old", new_bot, 7 * 86400, "bot"),
    ):
        assert who(old, started) == who(new, started) == name
        assert who(new, started + 365 * 86400) == name
        with pytest.raises(Unauthenticated) as expired:
            who(old, time.time() + grace)
        assert expired.value.code == "key_expired"
    assert principals[digest_key(new_app)].team == "search"
    assert main(["keys", "rotate", "nobody", "--config", str(config)]) == 1
    assert "no key with id 'nobody'" in capsys.readouterr().err


KEYED = "    api_key: ${env:OPENAI_API_KEY}\n"


@pytest.mark.parametrize(
    ("forwarded", "says"),
    [
        ("authorization", "set by the gateway alone"),
        ("cookie", "set by the gateway alone"),
        ("x-amz-date", "set by the gateway alone"),
        ("openai-organization", "set by the gateway alone"),
        ("x-extproc-route", "set by the gateway alone"),
        ("X-Trace", "lower-case"),
    ],
)
def test_a_provider_forwards_no_credential_nor_the_gateways_own(forwarded: str, says: str) -> None:
    text = VALID.replace(KEYED, KEYED + f"    forward_headers: [{forwarded}]\n")
    found = problems(text)
    assert any(p == "providers.openai.forward_headers.0" and says in m for p, m in found), found


def test_account_and_fixed_headers_are_checked() -> None:
    account = KEYED + "    organization: org-x\n    project: proj_x\n"
    gateway = parse_gateway(VALID.replace(KEYED, account), source=Path("gw.yaml"), environ=ENV)
    assert (gateway.providers["openai"].organization, gateway.providers["openai"].project) == (
        "org-x",
        "proj_x",
    )
    for field in ("organization: org-x", "project: proj_x"):
        anthropic = VALID.replace("kind: openai", "kind: anthropic")
        anthropic = anthropic.replace(KEYED, KEYED + f"    {field}\n")
        assert any("applies to" in m for _, m in problems(anthropic)), field
    broken = VALID.replace(
        "gpt-4o: {provider: openai, model: gpt-4o, options: {max_tokens: 512}}",
        'gpt-4o: {provider: openai, model: gpt-4o, headers: {x-tag: "a\\nb"}}',
    )
    assert any(p == "models.gpt-4o.headers.x-tag" for p, _ in problems(broken))


@pytest.mark.parametrize(
    ("section", "path", "message"),
    [
        ("spend: {ledger: {store: 'mysql://db/x'}}", "spend.ledger",
         "sqlite:<path> or a postgresql://"),
        ("spend: {ledger: {store: 'sqlite:'}}", "spend.ledger", "sqlite:<path>"),
        ("spend: {ledger: {store: '${env:LEDGER'}}", "spend.ledger", "sqlite:<path>"),
        ("spend: {ledger: {store: '${env:LEDGER}'}}", "spend.ledger.store", "LEDGER is not set"),
        ("spend: {alerts: {url: 'ftp://hooks'}}", "spend.alerts", "http(s) URL"),
        ("spend: {alerts: {url: 'https://h', thresholds: [0]}}", "spend.alerts.thresholds.0",
         "greater than 0"),
        ("spend: {expose: true}", "spend.expose", "unknown field"),
    ],
)  # fmt: skip
def test_spend_settings_are_checked(section: str, path: str, message: str) -> None:
    found = problems(VALID + section)
    assert any(where == path and message in what for where, what in found), found


def test_the_ledgers_url_and_the_alerts_url_are_secrets(tmp_path: Path) -> None:
    section = (
        "spend: {expose_cost: true, ledger: {store: '${env:LEDGER_URL}'},"
        " alerts: {url: '${env:HOOK}', thresholds: [80, 50]}}"
    )
    url = "postgresql://extproc:ledger-password@db:5432/spend"
    environ = ENV | {"LEDGER_URL": url, "HOOK": "https://hooks.example/t0ken"}
    gateway = parse_gateway(VALID + section, source=Path("gw.yaml"), environ=environ)
    assert gateway.spend.expose_cost
    assert gateway.spend.ledger is not None and gateway.spend.ledger.store.reveal() == url
    assert gateway.spend.alerts is not None and gateway.spend.alerts.thresholds == (0.5, 0.8)
    assert "ledger-password" not in repr(gateway) and "t0ken" not in repr(gateway)
    # The default journal is one directory per store, named without the URL.
    assert "ledger-password" not in str(gateway.spend.ledger.journal)
    keyed = VALID.replace("team: search}", "team: search, expose_cost: true}")
    principal = parse_gateway(keyed, source=Path("gw.yaml"), environ=ENV).principals[DIGEST]
    assert principal.expose_cost
