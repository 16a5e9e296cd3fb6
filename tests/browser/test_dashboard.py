"""The dashboard in real Chromium against a live control plane (local provider + stubs.anthropic).

Synchronisation is always Playwright waiting for something visible in the page, never sleeps.
Screenshots of every step land in tests/artifacts/browser/.
"""

from __future__ import annotations

import re
import secrets

import pytest
import requests

from stubs.anthropic import StubAnthropic
from tests.browser.conftest import Dashboard
from tests.support import ControlPlane

pytestmark = pytest.mark.browser

KEY = "sk-ant-api03-" + secrets.token_hex(24)


def expect(locator):
    from playwright.sync_api import expect as _expect

    return _expect(locator)


def open_launch_page(board: Dashboard) -> None:
    page = board.page
    page.goto(board.url + "/")
    page.locator(".preset-card[data-config-id='code-assistant']").wait_for()
    page.fill("#api-key-input", KEY)


def launch_from_card(board: Dashboard, config_id: str = "code-assistant") -> str:
    page = board.page
    page.locator(f".preset-card[data-config-id='{config_id}'] [data-action='launch']").click()
    page.locator(".composer-input").wait_for()
    page.locator(".welcome").wait_for()
    match = re.search(r"#/session/([\w-]+)$", page.url)
    assert match, page.url
    return match.group(1)


PNG_1X1 = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==")


def drop_file(board: Dashboard, name: str, content: str = "", *, size: int = 0, base64: str = "") -> None:
    """Drag-and-drop as a user would: a DataTransfer built in the page, dropped on the workspace.

    ``size`` makes a zero-filled file of that many bytes; ``base64`` gives binary content.
    """
    page = board.page
    transfer = page.evaluate_handle(
        """([name, content, size, b64]) => {
            let body = content;
            if (size) body = new Uint8Array(size);
            if (b64) body = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const dt = new DataTransfer();
            dt.items.add(new File([body], name, { type: b64 ? "image/png" : "text/plain" }));
            return dt;
        }""",
        [name, content, size, base64],
    )
    zone = page.locator("[data-dropzone]")
    for kind in ("dragenter", "dragover", "drop"):
        zone.dispatch_event(kind, {"dataTransfer": transfer})


def test_launch_chat_tasks_files_reload_and_stop(dashboard: Dashboard, control_plane: ControlPlane) -> None:
    board, page = dashboard, dashboard.page

    # Launch page: presets as cards, the key masked and kept in this tab only.
    open_launch_page(board)
    card = page.locator(".preset-card[data-config-id='code-assistant']")
    expect(card.locator("h3")).to_have_text("Code Assistant")
    expect(card.locator(".chips")).to_contain_text("Bash")
    expect(page.locator(".preset-card[data-config-id='github-code-review'] .badge-mcp")).to_be_visible()
    expect(page.locator(".preset-card[data-config-id='fullstack-team'] .badge-agents")).to_be_visible()
    assert page.get_attribute("#api-key-input", "type") == "password"
    expect(page.locator("#key-note")).to_contain_text("only to this AgCluster server")
    assert page.evaluate("() => sessionStorage.getItem('agcluster.apiKey')") == KEY
    assert page.evaluate("() => localStorage.length") == 0
    board.shot("01-launch")

    # Details on demand.
    card.get_by_role("button", name="Details").click()
    dialog = page.locator("dialog[open]")
    expect(dialog).to_contain_text("System prompt")
    expect(dialog).to_contain_text("bypassPermissions")
    board.shot("02-details")
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)

    # A preset with an MCP server asks for its credential (masked) before launching.
    page.locator(".preset-card[data-config-id='github-code-review'] [data-action='launch']").click()
    prompt = page.locator("dialog[open]")
    expect(prompt).to_contain_text("github · GITHUB_TOKEN")
    expect(prompt.locator("input")).to_have_count(1)
    assert prompt.locator("input").get_attribute("type") == "password"
    board.shot("02b-mcp-credentials")
    prompt.get_by_role("button", name="Cancel").click()
    expect(page.locator("dialog[open]")).to_have_count(0)
    assert not [r for r in board.requests if r.url.endswith("/api/agents/launch")]

    # One click: a live session.
    session_id = launch_from_card(board)
    expect(page.locator(".chat-title")).to_have_text("Code Assistant")
    board.shot("03-session")

    # A Bash turn: the command and its output in the timeline.
    board.send("run: echo hello-browser")
    bash = page.locator(".tool[data-tool-name='Bash']").last
    expect(bash.locator(".tool-command")).to_contain_text("echo hello-browser")
    expect(bash.locator(".tool-output")).to_contain_text("hello-browser")
    expect(bash.locator(".tool-status.ok")).to_be_visible()
    expect(page.locator(".turn").last.locator(".msg-text")).to_contain_text("hello-browser")
    expect(page.locator(".turn-footer").last).to_contain_text("in ·")
    board.shot("04-bash")

    # Tasks from `todo` events.
    board.send("todo: a; b; c")
    tasks = page.locator(".tasks-panel .task")
    expect(tasks).to_have_count(3)
    expect(tasks.locator(".task-text")).to_have_text(["a", "b", "c"])
    expect(page.locator(".tasks-panel .panel-counts")).to_contain_text("0/3 done")
    board.shot("05-tasks")

    # A file dropped on the workspace shows up in the tree, with a finished progress bar.
    drop_file(board, "dropped-notes.txt", "dropped by the browser test\nsecond line\n")
    expect(page.locator(".upload[data-name='dropped-notes.txt'][data-state='done']")).to_be_visible()
    row = page.locator(".tree-row[data-path='dropped-notes.txt']")
    expect(row).to_be_visible()
    board.shot("06-uploaded")

    # Preview it.
    row.click()
    preview = page.locator("dialog[open] .preview")
    expect(preview.locator(".source")).to_contain_text("dropped by the browser test")
    expect(preview.locator(".gutter")).to_contain_text("2")
    board.shot("07-preview")
    with page.expect_download() as download:
        page.locator("dialog[open]").get_by_role("button", name="Download").click()
    assert download.value.suggested_filename == "dropped-notes.txt"
    page.keyboard.press("Escape")
    expect(page.locator("dialog[open]")).to_have_count(0)

    # Dropping the same name again asks before replacing; the new content wins.
    uploads_before = len([r for r in board.requests if "/upload" in r.url])
    drop_file(board, "dropped-notes.txt", "replaced content\n")
    confirm = page.locator("dialog[open]")
    expect(confirm).to_contain_text("already exists")
    confirm.get_by_role("button", name="Replace").click()
    newest = page.locator(".upload[data-name='dropped-notes.txt']").first  # rows are newest first
    expect(newest).to_have_attribute("data-state", "done")
    uploads = [r for r in board.requests if "/upload" in r.url][uploads_before:]
    assert len(uploads) == 1 and "overwrite=true" in uploads[0].url, [u.url for u in uploads]
    row.click()
    expect(page.locator("dialog[open] .preview .source")).to_contain_text("replaced content")
    page.keyboard.press("Escape")

    # Too large: refused in the browser, nothing is sent.
    max_mb = page.evaluate("() => fetch('/ui/meta.json').then((r) => r.json()).then((m) => m.max_upload_mb)")
    drop_file(board, "too-big.bin", size=max_mb * 1024 * 1024 + 1)
    expect(page.locator(".upload[data-name='too-big.bin'][data-state='error']")).to_contain_text("Too large")
    assert len([r for r in board.requests if "/upload" in r.url]) == uploads_before + 1

    # Images preview as images.
    drop_file(board, "pixel.png", base64=PNG_1X1)
    page.locator(".tree-row[data-path='pixel.png']").click()
    expect(page.locator("dialog[open] .preview-image img")).to_be_visible()
    assert page.locator("dialog[open] .preview-image img").evaluate("(img) => img.naturalWidth") == 1
    page.keyboard.press("Escape")

    # The whole workspace as a ZIP.
    with page.expect_download() as download:
        page.get_by_role("button", name="Download workspace as ZIP").click()
    assert download.value.suggested_filename == "workspace.zip"

    # A file the agent writes appears without a manual refresh.
    board.send("write reports/summary.md: # Summary")
    expect(page.locator(".tool[data-tool-name='Write']").last).to_contain_text("reports/summary.md")
    expect(page.locator(".tree-row[data-path='reports/summary.md']")).to_be_visible()

    # After a reload the transcript, the tasks and the tree come back.
    page.reload()
    expect(page.locator(".tool[data-tool-name='Bash'] .tool-output").first).to_contain_text("hello-browser")
    expect(page.locator(".msg-user .bubble")).to_have_count(3)
    expect(page.locator(".tasks-panel .task")).to_have_count(3)
    expect(page.locator(".turn-footer.has-result")).to_have_count(3)
    expect(page.locator(".tree-row[data-path='dropped-notes.txt']")).to_be_visible()
    board.shot("08-reloaded")

    # The sessions page lists it; Stop frees the machine and keeps the session, Delete removes it.
    page.goto(board.url + "/#/sessions")
    session_row = page.locator(f"tr[data-session-id='{session_id}']")
    expect(session_row).to_contain_text("Code Assistant")
    expect(session_row.locator(".pill")).to_have_text(re.compile("ready|running"))
    expect(session_row).to_contain_text("3 turns")
    board.shot("09-sessions")
    session_row.locator("[data-action='stop']").click()
    expect(session_row.locator(".pill")).to_have_text("stopped")
    board.shot("10-stopped")
    stopped = requests.get(f"{control_plane.url}/api/agents/sessions/{session_id}",
                           headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
    assert stopped.json()["status"] == "stopped"
    session_row.locator("[data-action='delete']").click()
    page.locator("dialog[open]").get_by_role("button", name="Delete session").click()
    expect(session_row).to_have_count(0)
    board.shot("11-deleted")
    gone = requests.get(f"{control_plane.url}/api/agents/sessions/{session_id}",
                        headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
    assert gone.status_code == 404

    board.assert_clean()


def test_reload_mid_turn_resumes_with_last_event_id(dashboard: Dashboard, model: StubAnthropic) -> None:
    board, page = dashboard, dashboard.page
    open_launch_page(board)
    launch_from_card(board)
    model.control.set_latency(ttft=0.0, tokens_per_second=20)
    try:
        page.fill(".composer-input", "stream 60")
        page.keyboard.press("Enter")
        page.locator(".msg-text.streaming").wait_for()
        board.shot("01-streaming")
        page.reload()
        # The transcript so far is reloaded, then the running turn is followed to its end.
        footer = page.locator(".turn-footer.has-result")
        footer.wait_for()
        expect(page.locator(".msg-text").last).to_contain_text("w59")
        expect(page.locator(".msg-text").last).to_contain_text("w0 ")
    finally:
        model.control.set_latency(0.0, None)
    resumed = [r for r in board.requests if r.url.endswith("/chat") and r.headers.get("last-event-id")]
    assert resumed, "the reloaded page must resume the stream with Last-Event-ID"
    assert int(resumed[0].headers["last-event-id"]) > 1, "it resumes after the events it already has"
    # The reload cut the first stream; that is the only request the browser aborted.
    assert [a for a in board.problems.aborted if a.endswith("/chat")], board.problems.aborted
    board.shot("02-resumed")
    board.assert_clean()


def test_phone_width(browser, control_plane: ControlPlane) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    context.set_default_timeout(60_000)
    board = Dashboard(context.new_page(), control_plane.url, "phone")
    page = board.page
    try:
        open_launch_page(board)
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
        board.shot("01-launch")
        launch_from_card(board)
        board.send("run: echo small-screen")
        expect(page.locator(".tool[data-tool-name='Bash'] .tool-output")).to_contain_text("small-screen")
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
        board.shot("02-chat")
        page.get_by_role("tab", name="Files").click()
        expect(page.locator(".files-panel")).to_be_visible()
        expect(page.locator(".composer")).to_be_hidden()
        board.shot("03-files")
        page.get_by_role("tab", name="Tasks").click()
        expect(page.locator(".tasks-panel")).to_be_visible()
        page.get_by_role("tab", name="Chat").click()
        expect(page.locator(".composer")).to_be_visible()
        page.goto(board.url + "/#/sessions")
        page.locator("tr[data-session-id]").first.wait_for()
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
        board.shot("04-sessions")
        board.assert_clean()
    finally:
        context.close()


def test_config_builder_validates_saves_and_launches(dashboard: Dashboard) -> None:
    board, page = dashboard, dashboard.page
    # The server's field errors come back as 400s from /validate: expected here.
    board.problems.allowed_http.add((400, "/api/configs/validate"))
    page.goto(board.url + "/#/builder")
    page.locator("#cfg-name").wait_for()
    expect(page.locator(".yaml-preview")).to_contain_text("permission_mode: bypassPermissions")

    # Every choice is the server's (/ui/meta.json); the builder keeps no list of its own.
    meta = requests.get(board.url + "/ui/meta.json", timeout=30).json()
    expect(page.locator("[data-field='allowed_tools'] input")).to_have_count(len(meta["known_tools"]))
    expect(page.locator("#cfg-permission_mode option")).to_have_text(meta["permission_modes"])
    expect(page.locator("#cfg-network option")).to_have_text(meta["network_policies"])
    expect(page.locator("#cfg-network")).to_have_value(meta["config_defaults"]["network"])
    page.select_option("#cfg-network", "internet")
    expect(page.locator(".yaml-preview")).to_contain_text("network: internet")
    page.select_option("#cfg-network", "relay")

    # A local check first: no request for an obviously bad id.
    page.fill("#cfg-name", "Browser Built")
    expect(page.locator("#cfg-id")).to_have_value("browser-built")
    page.fill("#cfg-id", "X")
    page.get_by_role("button", name="Validate").click()
    expect(page.locator("[data-wrap='id'] .field-error")).to_contain_text("lowercase")

    # The API's validation errors land next to their fields.
    page.fill("#cfg-id", "browser-built")
    page.fill("#cfg-resource_limits-memory_limit", "1m")
    page.get_by_role("button", name="Validate").click()
    expect(page.locator("[data-wrap='resource_limits.memory_limit'] .field-error")).to_contain_text("128m")
    board.shot("01-field-error")

    # Fix, add a sub-agent, watch the YAML, save.
    page.fill("#cfg-resource_limits-memory_limit", "2g")
    page.get_by_role("button", name="Add sub-agent").click()
    agent = page.locator(".repeat-item").last
    agent.locator("input.row-name").fill("reviewer")
    agent.locator("[data-sub='description']").fill("Reviews changes")
    agent.locator("[data-sub='prompt']").fill("You review code.")
    expect(page.locator(".yaml-preview")).to_contain_text("reviewer:")
    expect(page.locator(".yaml-preview")).to_contain_text("memory_limit: 2g")
    page.get_by_role("button", name="Save configuration").click()
    # Saving ties the config to the key: the builder asks for it, masked.
    key_dialog = page.locator("dialog[open]")
    expect(key_dialog).to_contain_text("only that key can replace or delete it")
    assert key_dialog.locator("input[name='key']").get_attribute("type") == "password"
    key_dialog.locator("input[name='key']").fill(KEY)
    key_dialog.get_by_role("button", name="Save for this tab").click()
    expect(page.locator(".toast")).to_contain_text("Saved")
    board.shot("02-saved")

    # It is on the launch page as a custom configuration, and launches directly from the builder.
    page.goto(board.url + "/")
    custom = page.locator(".preset-card[data-config-id='browser-built']")
    expect(custom).to_contain_text("Browser Built")
    expect(custom.locator(".badge-agents")).to_be_visible()
    page.goto(board.url + "/#/builder/browser-built")
    expect(page.locator("#cfg-id")).to_have_value("browser-built")
    page.get_by_role("button", name="Launch now").click()
    page.locator(".welcome").wait_for()
    expect(page.locator(".chat-title")).to_have_text("Browser Built")
    board.shot("03-launched")
    board.assert_clean()


def tab_to(board: Dashboard, predicate: str, limit: int = 60) -> None:
    """Press Tab until `predicate` (a JS function of document.activeElement) holds."""
    for _ in range(limit):
        board.page.keyboard.press("Tab")
        if board.page.evaluate(f"() => {{ const el = document.activeElement; return Boolean(({predicate})(el)); }}"):
            return
    raise AssertionError(f"Tab never reached an element matching {predicate}")


def test_keyboard_only(dashboard: Dashboard) -> None:
    board, page = dashboard, dashboard.page
    page.goto(board.url + "/")
    page.locator(".preset-card[data-config-id='code-assistant']").wait_for()
    tab_to(board, "(el) => el.id === 'api-key-input'")
    page.keyboard.type(KEY)
    tab_to(board, "(el) => el.dataset.action === 'launch'"
                  " && el.closest('[data-config-id]').dataset.configId === 'code-assistant'")
    page.keyboard.press("Enter")
    page.locator(".welcome").wait_for()
    # The composer has focus after launch: type and press Enter.
    assert page.evaluate("() => document.activeElement.classList.contains('composer-input')")
    page.keyboard.type("write kb/keys.txt: typed without a mouse")
    page.keyboard.press("Enter")
    page.locator(".turn-footer.has-result").first.wait_for()
    # The tree: one Tab stop, arrows move, Enter opens, Escape closes.
    page.locator(".tree-row[data-path='kb']").wait_for()
    tab_to(board, "(el) => el.classList.contains('tree-row')")
    page.keyboard.press("Home")
    for _ in range(3):
        if page.evaluate("() => document.activeElement.dataset.path") == "kb/keys.txt":
            break
        page.keyboard.press("ArrowDown")
    assert page.evaluate("() => document.activeElement.dataset.path") == "kb/keys.txt"
    page.keyboard.press("Enter")
    expect(page.locator("dialog[open] .source")).to_contain_text("typed without a mouse")
    board.shot("01-preview-by-keyboard")
    page.keyboard.press("Escape")
    expect(page.locator("dialog[open]")).to_have_count(0)
    board.assert_clean()


def test_dashboard_is_served_under_a_strict_policy(control_plane: ControlPlane) -> None:
    index = requests.get(control_plane.url + "/", timeout=30)
    assert index.status_code == 200
    csp = index.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "connect-src 'self'" in csp
    assert index.headers["X-Content-Type-Options"] == "nosniff"
    html = index.text
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "no inline scripts"
    assert " style=" not in html and "<style" not in html, "no inline styles"
    module = requests.get(control_plane.url + "/ui/node_modules/marked/lib/marked.esm.js", timeout=30)
    assert module.status_code == 200 and "javascript" in module.headers["Content-Type"]
    # Only the vendored libraries' scripts and styles are reachable, nothing else npm installed.
    for path in ("/ui/node_modules/marked/package.json", "/ui/node_modules/.package-lock.json",
                 "/ui/node_modules/@types/trusted-types/index.d.ts"):
        assert requests.get(control_plane.url + path, timeout=30).status_code == 404, path
