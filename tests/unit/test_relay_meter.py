import json

from control.relay.meter import UsageMeter
from control.secrets import KeyVault, Redactor, TokenMinter, hash_key, key_matches


def sse(*events: dict) -> bytes:
    return b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)


def test_meter_reads_streamed_usage_across_chunk_boundaries() -> None:
    body = sse({"type": "message_start", "message": {"usage": {"input_tokens": 120, "output_tokens": 1,
                                                                "cache_read_input_tokens": 7}}},
               {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "usage"}},
               {"type": "message_delta", "usage": {"output_tokens": 42}})
    meter = UsageMeter()
    for i in range(0, len(body), 7):
        meter.feed(body[i:i + 7])
    meter.finish()
    assert meter.totals() == {"input_tokens": 120, "output_tokens": 42, "cache_read_tokens": 7, "cache_write_tokens": 0}


def test_meter_reads_json_answers() -> None:
    meter = UsageMeter()
    meter.feed(json.dumps({"type": "message", "usage": {"input_tokens": 5, "output_tokens": 9}}).encode())
    meter.finish()
    assert meter.totals()["input_tokens"] == 5 and meter.totals()["output_tokens"] == 9


def test_tokens_and_hashes() -> None:
    minter = TokenMinter(b"s" * 32)
    token = minter.relay_token("abc")
    assert minter.machine_for_relay_token(token) == "abc"
    tampered = token[:-1] + ("1" if token[-1] == "0" else "0")
    assert minter.machine_for_relay_token(tampered) is None
    assert minter.machine_for_relay_token("garbage") is None
    assert TokenMinter(b"t" * 32).machine_for_relay_token(token) is None
    salt, digest = hash_key("sk-ant-secret")
    assert key_matches("sk-ant-secret", salt, digest) and not key_matches("sk-ant-other", salt, digest)
    assert "sk-ant-secret" not in digest


def test_redactor_hides_known_and_key_shaped_secrets() -> None:
    redactor = Redactor()
    redactor.add("my-very-secret-value")
    text = redactor.redact("a my-very-secret-value b sk-ant-api03-abcdefghijkl c Bearer abcdefghijklmnop")
    assert "my-very-secret-value" not in text and "sk-ant-api03-abcdefghijkl" not in text
    assert "abcdefghijklmnop" not in text and text.count("[REDACTED]") == 3


def test_vault_is_memory_only() -> None:
    vault = KeyVault()
    vault.put("s", "sk-ant-xyzxyzxyz")
    assert vault.get("s") == "sk-ant-xyzxyzxyz"
    vault.forget("s")
    assert vault.get("s") is None
