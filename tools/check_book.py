"""Browser test of the built book: headless Chromium loads every page of _build/html with the network off.

    python tools/check_book.py _build/html --screenshots _build/screenshots

Fails (exit 1) on: Markdown table text left as a paragraph of pipes, math that MathJax did not typeset
(raw TeX outside code), directives shown as text (`.. automodule::`), broken images, links inside the book to a missing file or anchor, a page whose first
visible thing is code rather than its title, JavaScript errors and failed loads (a request to the network
counts as one: the book must work offline). Saves a PNG screenshot of each page for a human to look at.
Chromium is Debian's (`make chromium` installs it); it is driven over its DevTools protocol (websocket-client).
"""
from __future__ import annotations

import argparse
import base64
import html.parser
import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import websocket

PAGE_JS = r"""
(async () => {
  const sleep = ms => new Promise(r => setTimeout(r, ms));
  // Lazy images: load them all now, and wait for each to finish (or fail).
  const imgs = Array.from(document.images);
  imgs.forEach(i => { i.loading = "eager"; });
  await Promise.all(imgs.map(i => i.complete ? null : new Promise(r => {
    i.addEventListener("load", r); i.addEventListener("error", r); setTimeout(r, 10000); })));
  // MathJax: wait until it has started and typeset the page.
  const hasMath = document.querySelector(".math") !== null;
  const t0 = Date.now();
  while (hasMath && !(window.MathJax && MathJax.startup && MathJax.startup.promise) && Date.now() - t0 < 15000)
    await sleep(100);
  let mathjax = "absent";
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise; mathjax = MathJax.version || "loaded";
  }
  await document.fonts.ready;
  const skip = el => el.closest("pre, code, script, style, textarea, mjx-container, .highlight, mjx-assistive-mml");
  const rawMath = [], rawTables = [], rawMarkup = [];
  const texRe = /\\(frac|tfrac|alpha|beta|gamma|sigma|mathrm|mathbf|sum|int|left|right|qquad|approx|odot|nabla)\b|\$\$|\\\(|\\\[/;
  const dollarRe = /(^|[^\w$\\])\$[^$\s][^$\n]{0,200}?\$(?![\w$])/;
  const pipeRe = /\|\s*:?[-\u2014\u2013]{2,}:?\s*\|/;
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement; if (!el || skip(el)) continue;
    const t = n.textContent;
    if (texRe.test(t) || dollarRe.test(t)) rawMath.push(t.trim().slice(0, 120));
  }
  for (const el of document.querySelectorAll("p, li, div.cell_output div")) {
    if (skip(el)) continue;
    const t = el.innerText || "";
    if (pipeRe.test(t) || /^\s*\|[^|\n]+\|[^|\n]+\|/.test(t)) rawTables.push(t.trim().slice(0, 120));
    if (/^\s*\.\. [a-z:]+::/.test(t)) rawMarkup.push(t.trim().slice(0, 120));
  }
  for (const el of document.querySelectorAll(".math")) {
    if (!el.querySelector("mjx-container") && !el.closest("mjx-container")) rawMath.push("untypeset: " + el.textContent.trim().slice(0, 100));
  }
  const broken = imgs.filter(i => i.complete && i.naturalWidth === 0 || !i.complete).map(i => i.getAttribute("src"));
  // The page must open with its title: no visible code cell before the first h1 of the article.
  const art = document.querySelector("article") || document.body;
  const h1 = art.querySelector("h1");
  let codeBeforeTitle = null;
  for (const c of art.querySelectorAll("div.cell_input")) {
    const hidden = c.closest("details:not([open])") || c.getClientRects().length === 0;
    if (!hidden && (!h1 || (c.compareDocumentPosition(h1) & Node.DOCUMENT_POSITION_FOLLOWING))) {
      codeBeforeTitle = c.innerText.trim().slice(0, 80); break;
    }
  }
  // The width rule (issue 28): a table wider than the box it sits in makes the reader scroll sideways.
  const wideTables = [];
  art.querySelectorAll("table").forEach((t, i) => {
    const box = t.parentElement || art;
    // A cell tagged full-width (sphinx-book-theme) spans the margin too: its room is the cell's width, not the article's.
    const full = t.closest("div.cell.tag_full-width, div.cell.tag_full_width");
    const room = full ? full.clientWidth : Math.min(box.clientWidth, art.clientWidth || box.clientWidth);
    const over = Math.max(t.scrollWidth, t.getBoundingClientRect().width) - room;
    if (t.getClientRects().length && over > 1) {
      const head = t.querySelector("th, td");
      wideTables.push({index: i, width: Math.ceil(t.scrollWidth), room,
                       first: head ? head.innerText.trim().slice(0, 40) : ""});
    }
  });
  // The same rule for display equations: one wider than its box scrolls sideways and hides its right-hand side.
  const wideMath = [];
  art.querySelectorAll('mjx-container[display="true"]').forEach((m, i) => {
    const box = m.parentElement || art;
    const over = m.scrollWidth - Math.min(m.clientWidth || box.clientWidth, box.clientWidth);
    if (m.getClientRects().length && over > 1) {
      wideMath.push({index: i, width: Math.ceil(m.scrollWidth), room: Math.ceil(box.clientWidth),
                     first: (m.querySelector("mjx-assistive-mml") || m).textContent.trim().slice(0, 40)});
    }
  });
  const links = Array.from(document.querySelectorAll("a[href]")).map(a => a.href);
  return JSON.stringify({
    title: document.title, h1: h1 ? h1.innerText.trim() : null, mathjax,
    mathTypeset: document.querySelectorAll("mjx-container").length,
    tables: art.querySelectorAll("table").length, images: imgs.length,
    rawMath: Array.from(new Set(rawMath)).slice(0, 10), rawTables: rawTables.slice(0, 10), rawMarkup: rawMarkup.slice(0, 10), broken,
    codeBeforeTitle, links, wideTables, wideMath,
    height: Math.ceil(document.documentElement.scrollHeight),
  });
})()
"""


class Chromium:
    """A headless Chromium with no network, driven over one DevTools websocket."""

    def __init__(self, binary: str, width: int = 1280, height: int = 900):
        self.profile = tempfile.mkdtemp(prefix="check_book_")
        self.proc = subprocess.Popen(
            [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
             "--remote-debugging-port=0", "--remote-allow-origins=*", f"--user-data-dir={self.profile}",
             "--allow-file-access-from-files", "--host-resolver-rules=MAP * ~NOTFOUND",
             "--disable-background-networking", "--disable-component-update", f"--window-size={width},{height}",
             "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = Path(self.profile, "DevToolsActivePort")
        for _ in range(300):
            if port_file.is_file() and port_file.read_text().strip():
                break
            if self.proc.poll() is not None:
                raise RuntimeError(f"{binary} exited with {self.proc.returncode}")
            time.sleep(0.1)
        port = port_file.read_text().split()[0]
        targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10).read())
        page = next(t for t in targets if t["type"] == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=60, suppress_origin=True)
        self.next_id, self.events = 0, []
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable")
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})

    def send(self, method: str, params: dict | None = None, timeout: float = 60) -> dict:
        """Call a DevTools method and return its result (events that arrive meanwhile are kept)."""
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params or {}}))
        end = time.time() + timeout
        while time.time() < end:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]
            if "method" in msg:
                self.events.append(msg)
        raise TimeoutError(method)

    def wait_event(self, method: str, timeout: float = 60) -> None:
        """Read events until ``method`` arrives."""
        end = time.time() + timeout
        while time.time() < end:
            if any(e["method"] == method for e in self.events):
                return
            self.ws.settimeout(max(0.1, end - time.time()))
            msg = json.loads(self.ws.recv())
            if "method" in msg:
                self.events.append(msg)
        raise TimeoutError(method)

    def close(self) -> None:
        try:
            self.ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            shutil.rmtree(self.profile, ignore_errors=True)


class _Ids(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids = set()

    def handle_starttag(self, tag, attrs):
        for k, v in attrs:
            if k in ("id", "name") and v:
                self.ids.add(v)


def anchors(page: Path, cache: dict) -> set[str]:
    """The ids (and a names) a page defines."""
    if page not in cache:
        p = _Ids()
        p.feed(page.read_text(errors="replace"))
        cache[page] = p.ids
    return cache[page]


def errors_from(events: list[dict]) -> list[str]:
    """JavaScript exceptions, console errors, failed loads and network requests among DevTools events."""
    out = []
    for e in events:
        m, p = e["method"], e.get("params", {})
        if m == "Runtime.exceptionThrown":
            d = p["exceptionDetails"]
            out.append("exception: " + (d.get("exception", {}).get("description") or d.get("text", "")).split("\n")[0])
        elif m == "Runtime.consoleAPICalled" and p.get("type") == "error":
            out.append("console.error: " + " ".join(str(a.get("value", a.get("description", ""))) for a in p["args"]))
        elif m == "Log.entryAdded" and p["entry"]["level"] == "error":
            out.append(f"{p['entry'].get('source')}: {p['entry']['text']} {p['entry'].get('url', '')}".strip())
        elif m == "Network.requestWillBeSent" and p["request"]["url"].startswith(("http:", "https:")):
            out.append("network request (the book must work offline): " + p["request"]["url"])
        elif m == "Network.loadingFailed" and not p.get("canceled"):
            out.append(f"failed load: {p.get('errorText')} (request {p.get('requestId')})")
    return list(dict.fromkeys(out))


# Every page's tables and display equations must fit at 1280 px (issue 28's width rule): a wider one fails its page.
HEIGHT_BUDGET_PX = 12000  # a page taller than this is reported
PHONE_PX = 390


def check_page(browser: Chromium, root: Path, page: Path, shots: Path | None, cache: dict,
               phone: bool = False) -> tuple[dict, list[str]]:
    """Load one page; return what it holds and its problems."""
    browser.events.clear()
    browser.send("Page.navigate", {"url": page.as_uri()})
    browser.wait_event("Page.loadEventFired")
    r = browser.send("Runtime.evaluate", {"expression": PAGE_JS, "awaitPromise": True, "returnByValue": True},
                     timeout=120)
    if "exceptionDetails" in r:
        return {}, [f"page script failed: {r['exceptionDetails']}"]
    info = json.loads(r["result"]["value"])
    time.sleep(0.2)  # late console messages
    browser.send("Runtime.evaluate", {"expression": "1"})
    problems = [f"raw table text: {t!r}" for t in info["rawTables"]]
    problems += [f"untypeset math: {t!r}" for t in info["rawMath"]]
    problems += [f"raw reStructuredText directive: {t!r}" for t in info["rawMarkup"]]
    problems += [f"broken image: {s}" for s in info["broken"]]
    if info["codeBeforeTitle"] is not None and page.name not in ("genindex.html", "search.html", "py-modindex.html"):
        problems.append(f"code before the title: {info['codeBeforeTitle']!r}")
    for href in info.pop("links"):
        u = urllib.parse.urlparse(href)
        if u.scheme != "file":
            continue
        target = Path(urllib.parse.unquote(u.path))
        if root not in target.parents and target != root:
            continue
        if not target.exists():
            problems.append(f"link to a missing file: {target.relative_to(root)}")
        elif u.fragment and target.suffix == ".html" and urllib.parse.unquote(u.fragment) not in anchors(target, cache):
            problems.append(f"link to a missing anchor: {target.relative_to(root)}#{u.fragment}")
    problems += errors_from(browser.events)
    wide = [f"table {t['index']} ({t['first']!r}…) is {t['width']} px in {t['room']} px" for t in info.get("wideTables", [])]
    info["warnings"] = []
    problems += [f"wider than the page at 1280 px: {w}" for w in wide]
    problems += [f"display equation {m['index']} ({m['first']!r}…) wider than the page at 1280 px: {m['width']} px in "
                 f"{m['room']} px" for m in info.get("wideMath", [])]
    if info.get("height", 0) > HEIGHT_BUDGET_PX:
        info["warnings"].append(f"page height {info['height']} px, over the budget of {HEIGHT_BUDGET_PX} px")
    if shots is not None:
        # A viewport as tall as the page (capped), so the whole page is laid out as a reader scrolls it.
        height = min(info["height"], 16000)
        browser.send("Emulation.setDeviceMetricsOverride",
                     {"width": 1280, "height": height, "deviceScaleFactor": 1, "mobile": False})
        browser.send("Runtime.evaluate", {"expression": "window.scrollTo(0, 0)"})
        time.sleep(0.3)
        shot = browser.send("Page.captureScreenshot", {"format": "png"}, timeout=120)
        browser.send("Emulation.setDeviceMetricsOverride",
                     {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False})
        out = shots / (str(page.relative_to(root).with_suffix("")).replace("/", "__") + ".png")
        out.write_bytes(base64.b64decode(shot["data"]))
        info["screenshot"] = str(out)
        if phone:  # the same page at a phone's width, its first screens
            browser.send("Emulation.setDeviceMetricsOverride",
                         {"width": PHONE_PX, "height": 2400, "deviceScaleFactor": 1, "mobile": True})
            time.sleep(0.3)
            shot = browser.send("Page.captureScreenshot", {"format": "png"}, timeout=120)
            browser.send("Emulation.setDeviceMetricsOverride",
                         {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False})
            out = out.with_name(out.stem + f".{PHONE_PX}px.png")
            out.write_bytes(base64.b64decode(shot["data"]))
            info["screenshot_phone"] = str(out)
    return info, list(dict.fromkeys(problems))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("html", type=Path, help="the built book, e.g. _build/html")
    ap.add_argument("--screenshots", type=Path, default=None, help="folder for one PNG per page")
    ap.add_argument("--chromium", default=None, help="the browser binary (default: chromium on PATH)")
    ap.add_argument("--pages", nargs="*", default=None, help="only these pages (paths relative to html)")
    ap.add_argument("--phone", action="store_true", help=f"with --screenshots, also one at {PHONE_PX} px per page")
    args = ap.parse_args(argv)
    root = args.html.resolve()
    binary = args.chromium or shutil.which("chromium") or shutil.which("chromium-browser")
    if not binary:
        print("no chromium on PATH: run `make chromium` (Debian's package)", file=sys.stderr)
        return 2
    if not (root / "index.html").is_file():
        print(f"{root} holds no built book (index.html): run `make book` first", file=sys.stderr)
        return 2
    pages = [root / p for p in args.pages] if args.pages else sorted(
        p for p in root.rglob("*.html") if not {"_static", "_sources", "_images"} & set(p.relative_to(root).parts))
    if args.screenshots:
        args.screenshots.mkdir(parents=True, exist_ok=True)
    browser = Chromium(binary)
    failed, cache = 0, {}
    try:
        for page in pages:
            t0 = time.time()
            text = page.read_text(errors="replace")
            if 'http-equiv="refresh"' in text.lower():  # a redirect (index.html): its target must exist
                target = text.split('url=', 1)[1].split('"', 1)[0] if 'url=' in text else ""
                ok = bool(target) and (page.parent / target.split("#")[0]).is_file()
                print(f"{'ok  ' if ok else 'FAIL'} {page.relative_to(root)}: redirect to {target!r}")
                failed += not ok
                continue
            info, problems = check_page(browser, root, page, args.screenshots, cache, args.phone)
            rel = page.relative_to(root)
            print(f"{'FAIL' if problems else 'ok  '} {rel}: {info.get('tables', 0)} tables, "
                  f"{info.get('mathTypeset', 0)} typeset formulas (MathJax {info.get('mathjax')}), "
                  f"{info.get('images', 0)} images, title {info.get('h1')!r}, {time.time() - t0:.1f} s"
                  + (f"; {info['screenshot']}" if info.get("screenshot") else ""))
            for p in problems:
                print(f"     {p}")
            for w in info.get("warnings", []):
                print(f"     note: {w}")
            failed += bool(problems)
    finally:
        browser.close()
    print(f"{len(pages) - failed} of {len(pages)} pages pass")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
