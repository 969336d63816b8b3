"""Tests for the HTML to text conversion."""

from __future__ import annotations

from maildesk.htmltext import html_to_text


def test_hidden_elements_dropped():
    """<head>, <title>, <style> and <script> content never reaches the text."""
    html = (
        "<html><head><title>Otsikko</title><style>p.MsoNormal{margin:0}</style></head>"
        "<body><script>alert(1)</script><p>Hei</p></body></html>"
    )

    assert html_to_text(html) == "Hei"


def test_entities_become_characters():
    """Entities and &nbsp; become characters, the no-break space a plain space."""
    assert html_to_text("89,00&nbsp;&euro; &lt;ok&gt; &amp; &#228;&#x20AC;") == "89,00 € <ok> & ä€"


def test_blocks_and_breaks_make_lines():
    """Block elements and <br> start new lines; inline elements do not."""
    html = "<div>Rivi <b>yksi</b></div><p>Rivi<br>kaksi</p><h1>Otsikko</h1>loppu"

    assert html_to_text(html) == "Rivi yksi\nRivi\nkaksi\nOtsikko\nloppu"


def test_blank_runs_collapsed():
    """Several empty paragraphs give at most one blank line."""
    html = "<p>Hei,</p><p>&nbsp;</p><p>&nbsp;</p><p>&nbsp;</p><p>Terveisin</p>"

    assert html_to_text(html) == "Hei,\n\nTerveisin"


def test_source_whitespace_collapsed():
    """Line breaks and indentation in the HTML source are spaces, as a browser shows them."""
    assert html_to_text("<p>\n   Hei\n   maailma   </p>") == "Hei maailma"


def test_pre_keeps_layout():
    """Text inside <pre> keeps its spaces and line breaks."""
    assert html_to_text("<pre>a  b\n  c</pre>") == "a  b\n  c"


def test_list_items_marked():
    """List items start lines with "- "."""
    assert html_to_text("<ul><li>yksi<li>kaksi</ul>") == "- yksi\n- kaksi"


def test_table_cells_separated():
    """Table cells are separated by a space and rows by a line break."""
    html = "<table><tr><td>a</td><td>b</td></tr><tr><td>c</td></tr></table>"

    assert html_to_text(html) == "a b\nc"


def test_unclosed_head_ends_at_body():
    """A missing </head> does not hide the body."""
    assert html_to_text("<head><title>T</title><body>Teksti") == "Teksti"


def test_comments_and_conditionals_dropped():
    """HTML comments and Outlook's conditional markers leave no text."""
    html = "<!--[if gte mso 9]><xml>x</xml><![endif]--><![if !supportLists]>1.<![endif]> kohta"

    assert html_to_text(html) == "1. kohta"


def test_malformed_markup_tolerated():
    """Unbalanced tags give text instead of an error; a stray "<" is shown as browsers do."""
    assert html_to_text("<div><p>teksti</i></span></div></p><") == "teksti\n<"


def test_break_ending_block_ignored():
    """A <br> that only ends a block adds no blank line; two <br> do."""
    assert (
        html_to_text("<div>yksi<br></div><div>kaksi<br><br></div>kolme") == "yksi\nkaksi\n\nkolme"
    )


def test_unclosed_tags_linear():
    """Thousands of unclosed "<a" tags are shown as text, not parsed as one tag."""
    text = html_to_text("<a" * 20000 + ">x")

    assert text.endswith("x")


def test_unicode_space_paragraph_kept():
    """A paragraph holding only a no-break or ideographic space is a blank line."""
    assert (
        html_to_text("<p>yksi</p><p>\u3000</p><p>kaksi</p><div>&nbsp;</div>kolme")
        == "yksi\n\nkaksi\n\nkolme"
    )


def test_pre_block_between_paragraphs():
    """A <pre> block sits on its own lines without extra blank lines."""
    assert (
        html_to_text("<p>ennen</p><pre>  x = 1\n  y = 2</pre><p>jälkeen</p>")
        == "ennen\n  x = 1\n  y = 2\njälkeen"
    )
