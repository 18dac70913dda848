"""WebShop's pages as its text environment sees them, and its actions.

The web app's pages and how the adapter uses them:
- `GET /<session>`: the search page (instruction, search box). A session id containing
  "fixed" selects goal `int(session.split("_")[-1])` (goals shuffled with seed 233 by the app),
  so episode ids are WebShop's own fixed sessions, "fixed_<goal index>", used as the session id.
- `search[query]`: `POST /<session>` with form field `search_query`; the app redirects to
  `/search_results/<session>/<keywords>/<page>`. As in WebShop's text environment, a search is
  allowed from any page.
- `click[x]`: x names a clickable of the current page, as WebShop's text environment lists
  them (`get_available_actions`): the text of an element with class `btn` (a `<button>` in a
  `<form>`: we submit the form, POST to its action), of a `product-link` anchor (GET its href,
  the product's ASIN), or the value of an `input[type=radio]` option (GET its `data-url`).
  Names match case-insensitively; `click[search]` and unknown names change nothing, as there.
  We are a little more lenient than WebShop's `(.+)\\[(.+)\\]` about the action word and spaces
  (`Click [ Buy Now ]` is a click on "buy now"); anything else is a no-op, as there.
  Clicking "Buy Now" leads to `/done/...`, whose `#reward` element holds the reward (0-1).
- Observation text: WebShop's "text" observation mode: the page's visible text nodes (not in
  style/script/head/title/meta, not comments) joined with " [SEP] ". Unlike WebShop's
  BeautifulSoup version we drop whitespace-only nodes (it keeps all but a bare "\\n", which puts
  empty fields between separators); the fields themselves are the same.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urljoin

SEP = " [SEP] "
_IGNORED = {"style", "script", "head", "title", "meta", "[document]"}
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param",
         "source", "track", "wbr"}
_ACTION = re.compile(r"^\s*(search|click)\s*\[(.*)\]\s*$", re.DOTALL | re.IGNORECASE)


def parse_action(action: str) -> tuple[str, str] | None:
    """("search", query) or ("click", name) from "search[...]" / "click[...]"; None otherwise.

    Like WebShop, the argument is what lies between the first "[" and the last "]", lowercased.
    """
    m = _ACTION.match(action or "")
    if m is None:
        return None
    return m.group(1).lower(), m.group(2).strip().lower()


# --- pages ---------------------------------------------------------------------------------

@dataclass
class Clickable:
    name: str
    method: str            # "GET" or "POST"
    url: str | None        # None: nothing to follow (e.g. a button outside any form)
    kind: str              # "button", "product", "option"


@dataclass
class Page:
    """A WebShop page as its text environment sees it."""

    texts: list[str] = field(default_factory=list)
    clickables: dict[str, Clickable] = field(default_factory=dict)
    has_search_bar: bool = False
    instruction: str = ""
    reward: float | None = None

    @property
    def text(self) -> str:
        return SEP.join(self.texts)

    def available_actions(self) -> list[str] | None:
        """click[...] for each clickable; None where the page has a search box (free text)."""
        if self.has_search_bar:
            return None
        return [f"click[{name}]" for name in self.clickables if name != "search"]


class _PageParser(HTMLParser):
    """A stack of open tags is all we need: the parent of each text node, and the text of the
    few elements we read (buttons, product links, the instruction's <h4>, the reward)."""

    def __init__(self, base_url: str):
        super().__init__(convert_charrefs=True)
        self.base = base_url
        self.page = Page()
        self.stack: list[str] = []
        self.form: tuple[str, str] | None = None     # (method, action) of the form we are in
        # Elements whose text we collect: (depth, what, attributes, text parts).
        self.reading: list[tuple[int, str, dict, list[str]]] = []
        self.in_instruction: int | None = None       # depth of #instruction-text

    def handle_starttag(self, tag, attrs):
        a = {k: (v or "") for k, v in attrs}
        classes = a.get("class", "").split()
        if a.get("id") == "search_input":
            self.page.has_search_bar = True
        if tag == "form":
            self.form = ((a.get("method") or "get").upper(), urljoin(self.base, a.get("action", "")))
        if tag == "input" and a.get("type", "").lower() == "radio":
            url = a.get("data-url")
            self._add(a.get("value", ""), "GET", urljoin(self.base, url) if url else None, "option")
        if tag in _VOID:
            return
        self.stack.append(tag)
        depth = len(self.stack)
        if "product-link" in classes:
            self.reading.append((depth, "product", a, []))
        elif "btn" in classes:
            self.reading.append((depth, "button", {**a, "tag": tag}, []))
        if a.get("id") == "instruction-text":
            self.in_instruction = depth
        elif tag == "h4" and self.in_instruction is not None and not self.page.instruction \
                and not any(w == "instruction" for _, w, _, _ in self.reading):
            self.reading.append((depth, "instruction", a, []))
        if a.get("id") == "reward":
            self.reading.append((depth, "reward", a, []))

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag):
        if tag == "form":
            self.form = None
        if tag not in self.stack:
            return  # a stray end tag (the templates have a few): ignore it, as html.parser trees do
        while self.stack:
            depth = len(self.stack)
            open_tag = self.stack.pop()
            self.close_depth(depth)
            if open_tag == tag:
                break

    def close_depth(self, depth: int) -> None:
        if depth == self.in_instruction:
            self.in_instruction = None
        while self.reading and self.reading[-1][0] == depth:
            _, what, a, parts = self.reading.pop()
            text = "".join(parts)
            if what == "product":
                href = a.get("href")
                self._add(text, "GET", urljoin(self.base, href) if href else None, "product")
            elif what == "button":
                if a["tag"] == "a" and a.get("href"):
                    self._add(text, "GET", urljoin(self.base, a["href"]), "button")
                elif self.form is not None:
                    self._add(text, self.form[0], self.form[1], "button")
                else:
                    self._add(text, "GET", None, "button")
            elif what == "instruction":
                self.page.instruction = _instruction(text)
            elif what == "reward":
                numbers = re.findall(r"-?\d+(?:\.\d+)?(?:[eE]-?\d+)?", text.split("max 1.0)")[-1])
                if numbers:
                    self.page.reward = float(numbers[-1])

    def _add(self, name: str, method: str, url: str | None, kind: str) -> None:
        key = name.strip().lower()
        # A dict, as in WebShop's text environment: the last element of a name wins.
        self.page.clickables[key] = Clickable(key, method, url, kind)

    def handle_data(self, data):
        for _, _, _, parts in self.reading:
            parts.append(data)
        parent = self.stack[-1] if self.stack else "[document]"
        if parent not in _IGNORED and data.strip():
            self.page.texts.append(data.strip())


def _instruction(text: str) -> str:
    text = " ".join(text.split())
    return re.sub(r"^instruction:\s*", "", text, flags=re.IGNORECASE)


def parse_page(html: str, url: str = "http://webshop/") -> Page:
    """WebShop's text view of one HTML page: visible text, clickables, instruction, reward."""
    p = _PageParser(url)
    p.feed(html)
    p.close()
    while p.stack:  # unclosed elements at the end of the document
        d = len(p.stack)
        p.stack.pop()
        p.close_depth(d)
    return p.page

