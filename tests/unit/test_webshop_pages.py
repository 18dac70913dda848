"""WebShop's text view of its pages and its actions (act_trainer.envs.webshop_pages), without WebShop.

The pages in tests/fixtures/webshop/*.html are written by hand from WebShop's templates
(web_agent_site/templates) as its Flask app renders them; a real WebShop server could not be
run here (its product data, search index and spaCy model are separate downloads).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from act_trainer.envs.webshop_pages import parse_action, parse_page

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "webshop"
G1 = "i need a long clip-in hair extension which is natural looking, and price lower than 40.00 dollars"


def page(name: str):
    return parse_page((FIXTURES / f"{name}.html").read_text(), "http://127.0.0.1:3000/fixed_12")


# --- actions -------------------------------------------------------------------------------

@pytest.mark.parametrize("action, parsed", [
    ("search[Long Clip-In Hair]", ("search", "long clip-in hair")),
    ("click[< Prev]", ("click", "< prev")),
    ("click[B09QQLDJ93]", ("click", "b09qqldj93")),
    ("click[3 ounce (pack of 1)]", ("click", "3 ounce (pack of 1)")),
    ("click[size [large]]", ("click", "size [large]")),   # to the last bracket, as WebShop's regex
    ("  Click [ buy now ] ", ("click", "buy now")),
    ("search[]", ("search", "")),
    ("buy now", None), ("", None), ("think[what next]", None), ("click buy now]", None),
])
def test_parse_action(action, parsed):
    assert parse_action(action) == parsed


# --- pages ---------------------------------------------------------------------------------

def test_search_page():
    p = page("search_page")
    assert p.text == f"WebShop [SEP] Instruction: [SEP] {G1} [SEP] Search"
    assert p.has_search_bar and p.instruction == G1 and p.reward is None
    assert p.available_actions() is None  # a search box takes any text: nothing to list
    assert p.clickables["search"].method == "POST"


def test_results_page():
    p = page("results_page")
    assert p.text == (
        f"Instruction: {G1} [SEP] Current Query:  long  clip-in  hair  extension [SEP] Results [SEP] "
        "Page 1 (1-10) of 50 total results [SEP] Back to Search [SEP] Next > [SEP] "
        "B09QQLDJ93 [SEP] Long Clip in Hair Extensions Natural Looking 20 Inch Thick Straight Hairpieces [SEP] "
        "$24.99 [SEP] B08L5XQ1NW [SEP] Synthetic Curly Ponytail Extension with Claw Clip [SEP] $12.99 to $18.99 "
        "[SEP] B07Z8KTS6G [SEP] Hair Extension Storage Hanger & Carrier Case [SEP] $9.99")
    assert not p.has_search_bar and p.instruction == G1
    assert p.available_actions() == ["click[back to search]", "click[next >]", "click[b09qqldj93]",
                                     "click[b08l5xq1nw]", "click[b07z8kts6g]"]
    # The commented-out old layout (rendered by Jinja inside <!-- -->) is not on the page.
    assert "B0OLDLAYOUT" not in p.text and "b0oldlayout" not in p.clickables
    nxt, link = p.clickables["next >"], p.clickables["b09qqldj93"]
    assert (nxt.method, nxt.kind) == ("POST", "button") and nxt.url.endswith("%5D/2")
    assert nxt.url.startswith("http://127.0.0.1:3000/search_results/fixed_12/")
    assert (link.method, link.kind) == ("GET", "product") and "/item_page/fixed_12/B09QQLDJ93/" in link.url


def test_item_page():
    p = page("item_page")
    assert p.text == (
        f"Instruction: {G1} [SEP] Current Query: ['long', 'clip-in', 'hair', 'extension'] [SEP] Back to Search "
        "[SEP] < Prev [SEP] color [SEP] natural black [SEP] dark brown [SEP] size [SEP] 16 inch [SEP] 20 inch "
        "[SEP] Long Clip in Hair Extensions Natural Looking 20 Inch Thick Straight Hairpieces [SEP] "
        "Price: $24.99 [SEP] Rating: N.A. [SEP] Description [SEP] Features [SEP] Reviews [SEP] Buy Now")
    assert "addEventListener" not in p.text  # script text is not visible
    assert p.available_actions() == [
        "click[back to search]", "click[< prev]", "click[natural black]", "click[dark brown]", "click[16 inch]",
        "click[20 inch]", "click[description]", "click[features]", "click[reviews]", "click[buy now]"]
    opt = p.clickables["16 inch"]
    assert (opt.method, opt.kind) == ("GET", "option") and opt.url.endswith("%7B%27size%27:%20%2716%20inch%27%7D")
    buy = p.clickables["buy now"]
    assert (buy.method, buy.url) == ("POST", "http://127.0.0.1:3000/done/fixed_12/B09QQLDJ93/%7B%7D")


def test_sub_page_and_done_page():
    p = page("description_page")
    assert p.text.endswith("[SEP] Back to Search [SEP] < Prev [SEP] 100% natural looking synthetic fibre. "
                           "7 pieces with 16 clips; blends with your own hair.")
    assert p.available_actions() == ["click[back to search]", "click[< prev]"]
    assert "/item_page/" in p.clickables["< prev"].url

    d = page("done_page")
    assert d.reward == pytest.approx(2 / 3)
    assert d.available_actions() == [] and d.instruction == ""
    assert d.text.startswith("Thank you for shopping with us! [SEP] Your code: [SEP] None")
    assert "Your score (min 0.0, max 1.0) [SEP] 0.6666666666666666" in d.text


def test_malformed_html_does_not_break_parsing():
    p = parse_page('<div id="instruction-text"><h4>Instruction: buy <b>a</b> hat</h4></div>'
                   '<h4><a class="product-link" href="/x/B1">B1</a></h5><p>stray</span> text'
                   '<form action="/go" method="post"><button class="btn">Go</button>')
    assert p.instruction == "buy a hat"
    assert p.text == "Instruction: buy [SEP] a [SEP] hat [SEP] B1 [SEP] stray [SEP] text [SEP] Go"
    assert p.clickables["b1"].url == "http://webshop/x/B1"
    assert (p.clickables["go"].method, p.clickables["go"].url) == ("POST", "http://webshop/go")
