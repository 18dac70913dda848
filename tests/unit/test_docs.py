"""The docs: the site builds with `mkdocs build --strict`, README.md stays a short front page that
names CI's test command, and every link in it resolves (files, and #anchors with GitHub's slugs
for Markdown files GitHub renders, the built site's ids for pages of the docs site)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import markdown
import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
MAX_README_LINES = 200


class _Html(HTMLParser):
    """Links (a href, img src), element ids and heading texts of an HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.ids: set[str] = set()
        self.headings: list[str] = []
        self._heading: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("href") is not None:
            self.links.append(attrs["href"])
        if tag == "img" and attrs.get("src") is not None:
            self.links.append(attrs["src"])
        if re.fullmatch(r"h[1-6]", tag):
            self._heading = []

    def handle_endtag(self, tag):
        if re.fullmatch(r"h[1-6]", tag) and self._heading is not None:
            self.headings.append("".join(self._heading))
            self._heading = None

    def handle_data(self, data):
        if self._heading is not None:
            self._heading.append(data)


def _parse_markdown(path: Path) -> _Html:
    """The Markdown file as GitHub shows it, parsed: links in code blocks and spans are not links."""
    page = _Html()
    page.feed(markdown.markdown(path.read_text(), extensions=["tables", "fenced_code"]))
    return page


def github_slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped (not - or _), each space a '-'."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def github_anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    anchors = set()
    for heading in _parse_markdown(path).headings:
        slug = github_slug(heading)
        anchors.add(f"{slug}-{seen[slug]}" if seen.get(slug) else slug)
        seen[slug] = seen.get(slug, 0) + 1
    return anchors


def site_anchors(page: Path, site: Path) -> set[str]:
    """The ids mkdocs gave the built page of docs/PAGE.md (use_directory_urls: PAGE/index.html)."""
    rel = page.relative_to(DOCS).with_suffix("")
    html = site / ("index.html" if rel.name == "index" else rel / "index.html")
    assert html.exists(), f"{page} was not built into {html}"
    parsed = _Html()
    parsed.feed(html.read_text())
    return parsed.ids


def broken_links(path: Path, site: Path) -> list[str]:
    """Every link of a Markdown file that does not resolve, with why."""
    problems = []
    for link in _parse_markdown(path).links:
        url = urlparse(link)
        if url.scheme in ("http", "https"):
            if not url.netloc or "." not in url.netloc or re.search(r"\s", link):
                problems.append(f"{link}: not a well-formed URL")
            continue
        if url.scheme or url.netloc:
            problems.append(f"{link}: only relative links and http(s) URLs are checked; use one of those")
            continue
        target = (path.parent / unquote(url.path)).resolve() if url.path else path
        if not target.exists():
            problems.append(f"{link}: {target.relative_to(ROOT) if target.is_relative_to(ROOT) else target} "
                            "does not exist")
            continue
        if url.fragment:
            if target.suffix != ".md":
                problems.append(f"{link}: an #anchor into a file that is not Markdown")
                continue
            in_site = target.is_relative_to(DOCS) and path.resolve() != target
            anchors = site_anchors(target, site) if in_site else github_anchors(target)
            if url.fragment not in anchors:
                problems.append(f"{link}: no heading with that anchor in {target.name} "
                                f"({'mkdocs' if in_site else 'GitHub'} slugs: {', '.join(sorted(anchors))})")
    return problems


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    run = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
                          str(ROOT / "mkdocs.yml"), "--site-dir", str(out)],
                         cwd=ROOT, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert run.returncode == 0, f"mkdocs build --strict failed (run `make docs`):\n{run.stdout}\n{run.stderr}"
    return out


def test_site_builds_strict_with_every_page(site):
    pages = sorted(p.relative_to(DOCS) for p in DOCS.rglob("*.md"))
    assert Path("index.md") in pages and Path("reference/actjob.md") in pages
    for page in pages:  # --strict with validation.omitted_files: a page outside the nav already fails
        assert site_anchors(DOCS / page, site), page


def test_readme_is_short():
    lines = len(README.read_text().splitlines())
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines (at most {MAX_README_LINES}): move detail into docs/"


def test_readme_names_the_test_command_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text()
    commands = re.findall(r"^\s*(make test\S*)", ci, flags=re.M)
    assert commands, ".ci/run runs no `make test`"
    readme = README.read_text()
    for command in commands:
        assert re.search(rf"^{re.escape(command)}(\s|$)", readme, flags=re.M), f"README.md does not show `{command}`"


def test_readme_links_resolve(site):
    links = _parse_markdown(README).links
    assert any(link.startswith("docs/") for link in links), "README.md links no docs page"
    assert broken_links(README, site) == []


def test_github_slugs():
    assert github_slug("Quickstart (one machine, CPU, about two minutes)") == \
        "quickstart-one-machine-cpu-about-two-minutes"
    assert github_slug("One example: an ACTJob") == "one-example-an-actjob"
    assert github_slug("vLLM on CPU (`make vllm-env`)") == "vllm-on-cpu-make-vllm-env"
    assert github_slug("Table 1 as one resource: ACTExperiment") == "table-1-as-one-resource-actexperiment"


def test_broken_links_are_found(tmp_path, site):
    """The checker itself: each kind of bad link is reported, good ones are not."""
    (tmp_path / "other.md").write_text("# Other page\n\n## Same\n\n## Same\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Title here\n\n"
        "[ok](other.md) [ok](other.md#other-page) [ok](other.md#same-1) [ok](#title-here) "
        "[ok](https://example.org/x)\n"
        "[bad](missing.md) [bad](other.md#nope) [bad](#nope) [bad](https://localhost) [bad](ftp://x.org/y)\n\n"
        "```\n[not a link](nowhere.md)\n```\n")
    problems = broken_links(page, site)
    assert [p.split(":", 1)[0] for p in problems] == \
        ["missing.md", "other.md#nope", "#nope", "https", "ftp"], problems
    # A page of the docs site is checked against the ids mkdocs gave it, not GitHub's slugs.
    docs_link = tmp_path / "docs_link.md"
    docs_link.write_text(f"[ok]({DOCS / 'reference' / 'actjob.md'}#specstagescollect) "
                         f"[bad]({DOCS / 'reference' / 'actjob.md'}#spec-stages-collect)\n")
    assert [p.split(": ", 1)[1].split(" (")[0] for p in broken_links(docs_link, site)] == \
        ["no heading with that anchor in actjob.md"]
