"""The relay forwards exactly the Messages API routes the CLI needs, spelled its own way."""

from __future__ import annotations

import pytest

from control.relay.policy import Refused, match


def test_the_messages_routes_pass_with_their_own_spelling() -> None:
    route, query = match("POST", "v1/messages", {"beta": ["true"]})
    assert (route.path, route.metered, query) == ("v1/messages", True, {"beta": "true"})
    route, query = match("post", "v1/messages/count_tokens", {})
    assert (route.path, route.metered, query) == ("v1/messages/count_tokens", False, {})


@pytest.mark.parametrize("path", [
    "v1/models", "v1/files", "v1/organizations/me", "v1/messages/batches", "_stub/script", "v1/messages/",
    "./v1/messages", "v1/x/../messages", "v1//messages", "v1/messages/./count_tokens", "V1/messages",
    "v1/messages/count_tokens/..", "v1/complete", "api/hello", "",
])
def test_everything_else_is_refused(path: str) -> None:
    with pytest.raises(Refused) as refused:
        match("POST", path, {})
    assert refused.value.status == 404


def test_wrong_method_and_unknown_query_are_refused() -> None:
    with pytest.raises(Refused) as refused:
        match("GET", "v1/messages", {})
    assert refused.value.status == 405
    for query in ({"beta": ["false"]}, {"beta": ["true", "true"]}, {"limit": ["1"]}):
        with pytest.raises(Refused) as refused:
            match("POST", "v1/messages", query)
        assert refused.value.status == 400
