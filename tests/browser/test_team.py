"""Accounts in the dashboard (AUTH_MODE=token), in real Chromium against a live control plane
with the local provider and the stand-in model: an admin adds a member and gives them a
token, the member signs in with it and sees only their own sessions and usage, the usage
chart is drawn from real turns, launches show the limits the provider does not enforce, the
admin reads it all in the audit log, and a revoked token signs the member out.

Synchronisation is always Playwright waiting for something in the page, never sleeps.
Screenshots of every step land in tests/artifacts/browser/.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from stubs.anthropic import StubAnthropic
from tests.browser.conftest import Dashboard
from tests.support import ROOT, ControlPlane

pytestmark = pytest.mark.browser

ROOT_KEY = "sk-ant-api03-" + secrets.token_hex(24)
ALICE_KEY = "sk-ant-api03-" + secrets.token_hex(24)
TOKEN_KINDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")


def expect(locator):
    from playwright.sync_api import expect as _expect

    return _expect(locator)


def agcluster(data_dir: Path, *args: str) -> str:
    env = {**os.environ, "DATABASE_PATH": str(data_dir / "agcluster.db")}
    return subprocess.run([sys.executable, "-m", "control.cli", *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout


@pytest.fixture(scope="module")
def team_plane(tmp_path_factory: pytest.TempPathFactory, model: StubAnthropic) -> Iterator[tuple[ControlPlane, str]]:
    """A token-mode control plane with one admin, made the way an operator would."""
    data_dir = tmp_path_factory.mktemp("team")
    agcluster(data_dir, "users", "add", "root", "--admin")
    token = agcluster(data_dir, "tokens", "create", "root").strip().splitlines()[-1]
    cp = ControlPlane(data_dir, {"ANTHROPIC_BASE_URL": model.url, "AUTH_MODE": "token",
                                 "QUOTA_MAX_SESSIONS": "5", "QUOTA_DAILY_TOKENS": "5000000"}).start()
    yield cp, token
    cp.stop()


def board_for(browser: Any, url: str, name: str) -> tuple[Any, Dashboard]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, color_scheme="light")
    context.set_default_timeout(60_000)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=url)
    return context, Dashboard(context.new_page(), url, name)


def sign_in(board: Dashboard, token: str, key: str) -> None:
    page = board.page
    page.goto(board.url + "/")
    gate = page.locator(".view-signin .gate")
    expect(gate).to_contain_text("Sign in to AgCluster")
    gate.get_by_role("button", name="Sign in").click()
    dialog = page.locator("dialog[open]")
    assert dialog.locator("input[name='token']").get_attribute("type") == "password"
    dialog.locator("input[name='token']").fill(token)
    dialog.locator("input[name='key']").fill(key)
    dialog.get_by_role("button", name="Save for this tab").click()
    page.locator(".preset-card[data-config-id='code-assistant']").wait_for()


def launch(board: Dashboard) -> tuple[str, list[str]]:
    """Launch code-assistant from its card; the session id and the launch answer's warnings."""
    page = board.page
    with page.expect_response(lambda r: r.url.endswith("/api/agents/launch")) as answer:
        page.locator(".preset-card[data-config-id='code-assistant'] [data-action='launch']").click()
    body = answer.value.json()
    page.locator(".welcome").wait_for()
    match = re.search(r"#/session/([\w-]+)$", page.url)
    assert match and match.group(1) == body["session_id"], page.url
    return body["session_id"], body["warnings"]


def chart_points(board: Dashboard) -> dict[str, Any]:
    """What Chart.js drew: labels, both datasets, and the bars' pixel heights."""
    board.page.wait_for_function("() => window.Chart && window.Chart.getChart('usage-chart')")
    return board.page.evaluate("""() => {
        const chart = window.Chart.getChart('usage-chart');
        const bars = chart.getDatasetMeta(0).data.map((bar) => Math.round(bar.base - bar.y));
        const [tokens, cost] = chart.data.datasets.map((d) => d.data);
        return { labels: chart.data.labels, tokens, cost, bars };
    }""")


def api(cp: ControlPlane, token: str, path: str) -> Any:
    resp = requests.get(cp.url + path, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_admin_adds_a_member_who_signs_in_and_sees_only_their_own(browser: Any,
                                                                   team_plane: tuple[ControlPlane, str]) -> None:
    cp, root_token = team_plane
    admin_context, admin = board_for(browser, cp.url, "team_admin")
    member_context, member = board_for(browser, cp.url, "team_member")
    try:
        # The admin signs in: the team pages are offered, the audit log too.
        sign_in(admin, root_token, ROOT_KEY)
        page = admin.page
        expect(page.locator("#user-badge")).to_have_text("root · admin")
        for nav in ("team", "usage", "audit"):
            expect(page.locator(f"[data-nav='{nav}']")).to_be_visible()
        admin.shot("01-signed-in")

        # The launched session says plainly which limits this provider does not enforce.
        root_session, warnings = launch(admin)
        assert warnings, "the local provider always leaves some limit unenforced (storage or CPU)"
        expect(page.locator(".session-warnings li")).to_have_text(warnings)
        admin.shot("02-launch-warnings")
        admin.send("run: echo admin-was-here")
        admin.send("todo: plan; build; ship")  # more than alice's one turn, so the costs differ

        # Team: add alice (member) with a sign-in token, shown once with a copy button.
        page.goto(cp.url + "/#/team")
        page.get_by_role("button", name="Add member").click()
        form = page.locator("dialog[open]")
        form.locator("input[name='name']").fill("alice")
        assert form.locator("input[name='token']").is_checked() and not form.locator("input[name='admin']").is_checked()
        form.get_by_role("button", name="Add member").click()
        shown = page.locator("dialog[open].token-dialog")
        expect(shown).to_contain_text("A token for alice")
        expect(shown).to_contain_text("shown only this once")
        alice_token = shown.locator(".token-value").input_value()
        assert alice_token.startswith("agc_")
        shown.get_by_role("button", name="Copy").click()
        expect(page.locator(".toast", has_text="Token copied")).to_be_visible()
        assert page.evaluate("() => navigator.clipboard.readText()") == alice_token
        admin.shot("03-token-shown-once")
        shown.get_by_role("button", name="Done").click()
        alice_row = page.locator("[aria-label='Members'] tr", has_text="alice")
        expect(alice_row.locator("td[data-label='Active tokens']")).to_have_text("1")
        assert alice_token not in page.content(), "a token is never shown again"
        admin.shot("04-members")

        # alice signs in with it: her pages, no audit log, none of root's sessions.
        sign_in(member, alice_token, ALICE_KEY)
        mpage = member.page
        expect(mpage.locator("#user-badge")).to_have_text("alice")
        expect(mpage.locator("[data-nav='audit']")).to_be_hidden()
        expect(mpage.locator("[data-nav='usage']")).to_be_visible()
        mpage.goto(cp.url + "/#/sessions")
        expect(mpage.locator(".sessions-body .empty")).to_contain_text("No sessions yet")
        mpage.goto(cp.url + "/")
        mpage.locator(".preset-card[data-config-id='code-assistant']").wait_for()
        alice_session, _ = launch(member)
        member.send("run: echo hi")
        expect(mpage.locator(".tool[data-tool-name='Bash'] .tool-output").last).to_contain_text("hi")
        mpage.goto(cp.url + "/#/sessions")
        rows = mpage.locator("tr[data-session-id]")
        expect(rows).to_have_count(1)
        assert rows.first.get_attribute("data-session-id") == alice_session != root_session
        member.shot("05-member-sessions")
        expect(mpage.locator("th", has_text="Owner")).to_have_count(0)  # hers alone: no owner column

        # The admin sees both sessions, each with its owner, as the API says.
        listed = {s["session_id"]: s["owner"]["name"] for s in api(cp, root_token, "/api/agents/sessions")["sessions"]}
        assert listed == {root_session: "root", alice_session: "alice"}
        page.goto(cp.url + "/#/sessions")
        for sid, name in listed.items():
            expect(page.locator(f"tr[data-session-id='{sid}'] td[data-label='Owner']")).to_have_text(name)
        admin.shot("05a-admin-sessions-with-owners")

        # Her usage: the chart is drawn from her real turns, the tables hold only her session.
        mpage.goto(cp.url + "/#/usage")
        expect(mpage.locator("h1 .badge")).to_have_text("yours")
        mine = api(cp, alice_token, "/api/usage?group_by=day&days=30")["usage"]
        assert len(mine) == 1 and mine[0]["requests"] >= 1
        today_tokens = sum(mine[0][k] for k in TOKEN_KINDS)
        points = chart_points(member)
        assert len(points["labels"]) == 30 and points["labels"][-1] == mine[0]["key"][5:]
        assert points["tokens"][-1] == today_tokens > 0 and sum(points["tokens"]) == today_tokens
        assert points["cost"][-1] == pytest.approx(mine[0]["cost_usd"], abs=1e-6)
        assert points["bars"][-1] > 0, "today's bar has a height on the canvas"
        sessions = mpage.locator("table.usage-sessions tbody tr")
        expect(sessions).to_have_count(1)
        assert sessions.first.get_attribute("data-key") == alice_session
        expect(mpage.locator("table.usage-users")).to_have_count(0)
        expect(mpage.locator(".quota[data-quota='max_sessions'] .quota-value")).to_have_text("1 of 5")
        expect(mpage.locator(".quota[data-quota='daily_tokens'] progress")).to_be_visible()
        expect(mpage.locator("[data-stat='total-requests'] .usage-stat-value")).to_have_text(str(mine[0]["requests"]))
        member.shot("06-member-usage")

        # Her tokens: the one this tab uses is marked; a new one is shown once and revoked after a confirmation.
        mpage.goto(cp.url + "/#/team")
        my_tokens = mpage.locator("[aria-label='Your API tokens'] tbody tr")
        expect(my_tokens).to_have_count(1)
        expect(my_tokens.first).to_contain_text("this tab")
        expect(mpage.locator("#members-h")).to_have_count(0)
        mpage.get_by_role("button", name="New token").click()
        extra = mpage.locator("dialog[open].token-dialog .token-value").input_value()
        mpage.locator("dialog[open]").get_by_role("button", name="Done").click()
        expect(my_tokens).to_have_count(2)
        spare = mpage.locator("[aria-label='Your API tokens'] tbody tr", has_not_text="this tab")
        expect(spare.locator("td[data-label='Last used']")).to_have_text("never")
        expect(mpage.locator("[aria-label='Your API tokens'] tbody tr", has_text="this tab")
               .locator("td[data-label='Last used']")).to_have_text("just now")
        spare.get_by_role("button", name=re.compile("^Revoke token")).click()
        confirm = mpage.locator("dialog[open]")
        expect(confirm).to_contain_text("stops working at once")
        confirm.get_by_role("button", name="Revoke token").click()
        expect(spare.locator(".pill")).to_have_text("revoked")
        revoked = requests.get(cp.url + "/api/me", headers={"Authorization": f"Bearer {extra}"}, timeout=30)
        assert revoked.status_code == 401
        member.shot("07-member-tokens")

        # alice's saved config is hers alone until the admin shares it from its card.
        saved = requests.post(cp.url + "/api/configs/", headers={"Authorization": f"Bearer {alice_token}"}, timeout=30,
                              json={"id": "alice-agent", "name": "Alice agent", "allowed_tools": ["Bash"],
                                    "network": "internet"})
        assert saved.status_code == 201, saved.text
        page.goto(cp.url + "/")
        card = page.locator(".preset-card[data-config-id='alice-agent']")
        expect(card.locator(".badge", has_text="Internet")).to_be_visible()
        expect(card.locator(".badge", has_text="Shared")).to_have_count(0)
        card.locator("[data-action='share']").click()
        expect(card.locator(".badge", has_text="Shared")).to_be_visible()
        expect(card.locator("[data-action='share']")).to_have_text("Stop sharing")
        mpage.goto(cp.url + "/")
        expect(mpage.locator(".preset-card[data-config-id='alice-agent'] [data-action='share']")).to_have_count(0)
        admin.shot("08a-shared-config")

        # The admin reads it all in the audit log, by name, and can filter it.
        page.goto(cp.url + "/#/audit")
        audit = page.locator("[aria-label='Audit log'] tbody tr")
        audit.first.wait_for()
        def cell(i: int, label: str) -> str:
            return str(audit.nth(i).locator(f"td[data-label='{label}']").inner_text())

        seen = {(cell(i, "Actor"), cell(i, "Action")) for i in range(audit.count())}
        assert {("root", "user.add"), ("root", "token.create"), ("root", "config.share"), ("alice", "session.launch"),
                ("alice", "token.create"), ("alice", "token.revoke")} <= seen, seen
        page.fill("#audit-action", "user.add")
        page.get_by_role("button", name="Filter").click()
        expect(audit).to_have_count(2)  # root by the server's CLI, alice by root
        page.select_option("#audit-actor", label="root")
        expect(audit).to_have_count(1)
        expect(audit.first.locator("td[data-label='Target']")).not_to_be_empty()
        expect(audit.first).to_contain_text("name=alice")
        admin.shot("08-audit")

        # Everyone's usage for the admin: per user, sortable.
        page.goto(cp.url + "/#/usage")
        expect(page.locator("h1 .badge")).to_have_text("everyone")
        users = page.locator("table.usage-users tbody tr")
        expect(users).to_have_count(2)
        expect(page.locator("table.usage-sessions tbody tr")).to_have_count(2)
        per_user = api(cp, root_token, "/api/usage?group_by=user&days=30")["usage"]
        costs = {row["user"]: row["cost_usd"] for row in per_user}
        cost_header = page.locator("table.usage-users th[data-key='cost_usd']")
        expect(cost_header).to_have_attribute("aria-sort", "descending")
        order = [users.nth(i).locator("td").first.inner_text() for i in range(2)]
        assert order == sorted(costs, key=lambda u: costs[u], reverse=True)
        cost_header.get_by_role("button").click()
        expect(cost_header).to_have_attribute("aria-sort", "ascending")
        assert [users.nth(i).locator("td").first.inner_text() for i in range(2)] == order[::-1]
        assert sum(chart_points(admin)["tokens"]) > today_tokens  # root's turn too
        admin.shot("09-admin-usage")

        # On a phone the pages fit the screen (tables become cards, the nav scrolls).
        mpage.set_viewport_size({"width": 390, "height": 844})
        for view, ready in (("usage", "table.usage-sessions tbody tr"),
                            ("team", "[aria-label='Your API tokens'] tbody tr")):
            mpage.goto(cp.url + f"/#/{view}")
            mpage.locator(ready).first.wait_for()
            assert mpage.evaluate("() => document.documentElement.scrollWidth") <= 390, view
            member.shot(f"09-phone-{view}")

        # The admin revokes alice's sign-in token: her tab is asked to sign in again.
        page.goto(cp.url + "/#/team")
        sign_in_token = page.locator("[aria-label='Every token'] tbody tr", has_text="alice").filter(has_text="active")
        expect(sign_in_token).to_have_count(1)
        sign_in_token.get_by_role("button", name=re.compile("^Revoke token")).click()
        page.locator("dialog[open]").get_by_role("button", name="Revoke token").click()
        expect(sign_in_token).to_have_count(0)
        member.problems.allowed_http.add((401, "/api/"))
        mpage.goto(cp.url + "/#/usage")
        expect(mpage.locator(".view-signin .gate")).to_contain_text("not accepted")
        member.shot("10-revoked")

        admin.assert_clean()
        member.assert_clean()
    finally:
        admin_context.close()
        member_context.close()


def test_without_accounts_the_team_pages_are_hidden_and_explained(dashboard: Dashboard) -> None:
    board, page = dashboard, dashboard.page
    page.goto(board.url + "/")
    page.locator(".preset-card[data-config-id='code-assistant']").wait_for()
    for nav in ("team", "usage", "audit"):
        expect(page.locator(f"[data-nav='{nav}']")).to_be_hidden()
    page.goto(board.url + "/#/team")
    expect(page.locator(".empty")).to_contain_text("AUTH_MODE=token")
    page.goto(board.url + "/#/usage")
    expect(page.locator(".empty")).to_contain_text("needs accounts")
    page.goto(board.url + "/#/audit")
    expect(page.locator(".empty")).to_contain_text("Administrators only")
    board.shot("01-no-accounts")
    assert not [r for r in board.requests if re.search(r"/api/(users|tokens|usage|quotas|audit)", r.url)]
    board.assert_clean()
