"""The report of ``betavae reproduce`` (betavae.study.report): real figures in, HTML and Markdown out.

The HTML is read back with the standard library's parser (and, in one slow test, shown in a
headless Chromium at a phone's size); the Markdown's figure links are followed to the files.
"""

from __future__ import annotations

import base64
import os
import re
from dataclasses import dataclass, field, replace
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure as MplFigure
from PIL import Image

from betavae.errors import BetaVAEError
from betavae.study.report import (
    CLAIMS_HEADER,
    VERDICTS,
    ClaimPart,
    ClaimRow,
    Figure,
    Report,
    Section,
    Table,
    format_seconds,
    markdown_text,
    render_html,
    write_report,
)
from betavae.viz import save_figure

OUTPUT_DIR = Path(os.environ.get("BETAVAE_TEST_OUTPUT", Path(__file__).resolve().parents[1] / "test-output"))
PHONE = {"width": 390, "height": 844}
TRICKY = "β < 4 | β_norm & *x* [a](b) `c` #1"


# ------------------------------------------------------------------------------------------ helpers

@dataclass
class Node:
    tag: str
    attrs: dict[str, str | None] = field(default_factory=dict)
    children: list[Node | str] = field(default_factory=list)

    def find_all(self, tag: str) -> list[Node]:
        found = []
        for child in self.children:
            if isinstance(child, Node):
                found += [child] if child.tag == tag else []
                found += child.find_all(tag)
        return found

    def text(self) -> str:
        return "".join(child if isinstance(child, str) else child.text() for child in self.children)


class _TreeBuilder(HTMLParser):
    VOID = {"meta", "img", "br", "hr", "link", "input"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document")
        self.stack = [self.root]
        self.unclosed: list[str] = []

    def handle_starttag(self, tag, attrs):
        node = Node(tag, dict(attrs))
        self.stack[-1].children.append(node)
        if tag not in self.VOID:
            self.stack.append(node)

    def handle_endtag(self, tag):
        assert self.stack[-1].tag == tag, f"</{tag}> closes <{self.stack[-1].tag}>"
        self.stack.pop()

    def handle_data(self, data):
        self.stack[-1].children.append(data)


def parse_html(text: str) -> Node:
    builder = _TreeBuilder()
    builder.feed(text)
    builder.close()
    unclosed = [node.tag for node in builder.stack[1:]]
    assert not unclosed, f"unclosed elements: {unclosed}"
    return builder.root


def all_nodes(node: Node) -> list[Node]:
    return [node] + [n for child in node.children if isinstance(child, Node) for n in all_nodes(child)]


def markdown_cells(line: str) -> list[str]:
    """A GFM table row's cells: split on pipes that no backslash escapes."""
    assert line.startswith("| ") and line.endswith(" |"), line
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", line[1:-1])]


def write_png(path: Path, width: int = 64, height: int = 24) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", (width, height))
    image.putdata([(x * 255 // width, y * 255 // height, 128) for y in range(height) for x in range(width)])
    image.save(path)
    return path


def write_svg(path: Path, values: list[float]) -> Path:
    figure = MplFigure(figsize=(3, 2))
    axes = figure.add_subplot()
    axes.plot(values, marker="o")
    axes.set_title("β sweep")
    return save_figure(figure, path)


def claims() -> list[ClaimRow]:
    return [
        ClaimRow(1, "β > 1 disentangles better than β = 1", "yes (Table 1)", "partly",
                 "+0.21 ± 0.06 (3 seeds)", "held", "the lower end of the 95% interval is above 0"),
        ClaimRow(2, "MNIST traversals vary one factor each", "figure 4", "not tested",
                 "0.10 ± 0.15 (3 seeds)", "inconclusive", "the interval contains 0"),
        ClaimRow(3, TRICKY, "a < b", "a & b", "-0.30 ± 0.05 (3 seeds)", "not held",
                 "the upper end of the interval is below 0"),
        ClaimRow(4, "Larger β gives a higher held-out loss", "shown", "—",
                 "shapes loss > 0: +4.1 ± 0.3 (3 seeds), held; "
                 "mnist <loss> < 0: -0.2 ± 0.9 (3 seeds), inconclusive",
                 "inconclusive", "1 of 2 parts inconclusive, none not held",
                 (ClaimPart("shapes loss", "> 0", "+4.1 ± 0.3 (3 seeds)", "held"),
                  ClaimPart("mnist <loss>", "< 0", "-0.2 ± 0.9 (3 seeds)", "inconclusive"))),
    ]


@pytest.fixture()
def study(tmp_path: Path) -> tuple[Report, Path, dict[str, Path]]:
    """A report naming four real figures: two outside its folder of the same name, two SVGs of two plots."""
    out_dir = tmp_path / "study"
    figures = {
        "png": write_png(tmp_path / "elsewhere" / "a" / "reconstructions.png", width=1200),
        "png_same_name": write_png(tmp_path / "elsewhere" / "b" / "reconstructions.png", width=48),
        "svg_inside": write_svg(out_dir / "parts" / "curve.svg", [1.0, 3.0, 2.0]),
        "svg_outside": write_svg(tmp_path / "elsewhere" / "heatmap.svg", [4.0, 0.5, 1.5, 2.5]),
    }
    baselines = Table(["Model", "β-VAE metric", "Spread"],
                      [["β-VAE (β = 4)", "99.2%", "± 0.3"], ["VAE", "61.6%", "± 1.2"],
                       [TRICKY, "x|y", "<&>"]],
                      caption="Disentanglement metric, in the layout of the paper's Table 1")
    report = Report(
        title="β-VAE reproduced",
        command="betavae reproduce --scale small --out 'runs/reproduce here' --seeds 3",
        scale="small: 3 seeds × 4 β values of conv28 on Shapes, 2,000 steps each",
        rule="held if the 95% interval of our difference lies on the paper's side of 0; not held if it lies "
             "on the other side; inconclusive otherwise",
        claims=claims(),
        sections=[
            Section("Baselines", ["# not a heading", "1. not a list", TRICKY], [baselines],
                    [Figure(figures["png"], "Reconstructions, run A"),
                     Figure(figures["png_same_name"], "Reconstructions, run B")]),
            Section("Curves", [], [], [Figure(figures["svg_inside"], "Metric against β"),
                                       Figure(figures["svg_outside"], "Heatmap | of <codes>")]),
        ],
        environment={"python": "3.11.2", "torch": "2.13.0", "device": "cpu", "threads": "2"},
        timings={"shapes": 12.34, "dsprites": 245.0, "total": 7384.0},
        skipped=["MNIST: its files are not in ~/data and the machine is offline"],
    )
    return report, out_dir, figures


# ---------------------------------------------------------------------------------------------- HTML

def test_html_embeds_every_figure_and_references_nothing_outside(study):
    report, out_dir, figures = study
    html_path, _ = write_report(report, out_dir)
    text = html_path.read_text(encoding="utf-8")
    document = parse_html(text)

    images = document.find_all("img")
    assert len(images) == len(figures)
    for image, name in zip(images, ["png", "png_same_name", "svg_inside", "svg_outside"], strict=True):
        media_type = "image/png" if name.startswith("png") else "image/svg+xml"
        prefix = f"data:{media_type};base64,"
        assert image.attrs["src"].startswith(prefix)
        assert base64.b64decode(image.attrs["src"][len(prefix):]) == figures[name].read_bytes()
    for node in all_nodes(document):
        for attribute in ("src", "href", "srcset", "data", "action"):
            assert node.attrs.get(attribute) is None or node.attrs[attribute].startswith("data:"), node
        assert node.tag not in {"script", "link", "iframe", "object", "embed", "base"}
    assert not re.search(r"https?:|//[a-z]|url\(", text, re.IGNORECASE)
    viewport = [m for m in document.find_all("meta") if m.attrs.get("name") == "viewport"]
    assert viewport and "width=device-width" in viewport[0].attrs["content"]


def test_the_poster_is_linked_only_when_the_study_has_one(study):
    report, out_dir, _ = study
    html_path, markdown_path = write_report(report, out_dir)  # no poster: nothing links outside
    assert "poster" not in html_path.read_text(encoding="utf-8")
    assert "poster" not in markdown_path.read_text(encoding="utf-8")
    write_report(replace(report, poster="poster/index.html"), out_dir)
    links = [node.attrs["href"] for node in all_nodes(parse_html(html_path.read_text(encoding="utf-8")))
             if "href" in node.attrs]
    assert links == ["poster/index.html"]  # the one relative link, beside the rerun command
    markdown = markdown_path.read_text(encoding="utf-8")
    assert "[the interactive poster](poster/index.html)" in markdown
    assert markdown.index("poster/index.html") < markdown.index("## Claims")


def test_svgs_of_different_figures_cannot_clash_in_the_html(study):
    """matplotlib names ids figure_1, axes_1, … in every SVG: inlined together they would collide."""
    report, out_dir, figures = study
    ids = [set(re.findall(r'id="([^"]+)"', figures[name].read_text()))
           for name in ("svg_inside", "svg_outside")]
    assert ids[0] & ids[1], "the two SVGs share ids, which is what this test guards against"
    html_path, _ = write_report(report, out_dir)
    nodes = all_nodes(parse_html(html_path.read_text(encoding="utf-8")))
    document_ids = [node.attrs["id"] for node in nodes if "id" in node.attrs]
    assert len(document_ids) == len(set(document_ids))


def test_claims_table_comes_first_with_one_row_and_a_visible_verdict_per_claim(study):
    report, out_dir, _ = study
    html_path, _ = write_report(report, out_dir)
    document = parse_html(html_path.read_text(encoding="utf-8"))
    first_table = document.find_all("table")[0]
    assert "claims" in first_table.attrs.get("class", "")
    rows = first_table.find_all("tbody")[0].find_all("tr")
    assert len(rows) == len(report.claims)
    for row, claim in zip(rows, report.claims, strict=True):
        cells = row.find_all("td")
        assert [cell.text() for cell in cells] == [str(claim.number), claim.claim, claim.paper,
                                                    claim.reproducibility_report, ours_text(claim),
                                                    claim.verdict, claim.why]
        assert f"verdict-{claim.verdict.replace(' ', '-')}" in cells[5].attrs["class"]
        # each cell names its column, which the phone's layout shows above it
        assert [cell.attrs["data-label"] for cell in cells] == CLAIMS_HEADER
    body_text = document.text()
    assert report.rule in body_text
    assert body_text.index(report.rule) < body_text.index(report.claims[0].claim)
    assert [code.text() for code in document.find_all("code")] == [report.command]
    assert document.find_all("h1")[0].text() == report.title
    assert report.scale in body_text


def ours_text(claim: ClaimRow) -> str:
    """What the HTML's Ours cell reads: the effect, or each part with its relation, effect and verdict."""
    if not claim.parts:
        return claim.ours
    return "".join(f"{part.name} {part.expected}: {part.ours} {part.verdict}" for part in claim.parts)


def test_a_claim_in_parts_lists_each_part_with_its_own_verdict(study):
    report, out_dir, _ = study
    html_path, markdown_path = write_report(report, out_dir)
    claim = report.claims[-1]
    row = parse_html(html_path.read_text(encoding="utf-8")).find_all("table")[0].find_all("tr")[-1]
    items = row.find_all("li")
    assert [item.text() for item in items] == [f"{part.name} {part.expected}: {part.ours} {part.verdict}"
                                               for part in claim.parts]
    for item, part in zip(items, claim.parts, strict=True):
        tag = item.find_all("span")[-1]
        assert tag.text() == part.verdict and f"verdict-{part.verdict}" in tag.attrs["class"]
    markdown = markdown_path.read_text(encoding="utf-8")
    line = next(line for line in markdown.splitlines() if line.startswith(f"| {claim.number} |"))
    lines_of_ours = markdown_cells(line)[4].split("<br>")
    assert lines_of_ours == [markdown_text(f"{part.name} {part.expected}: {part.ours}, {part.verdict}")
                             for part in claim.parts]
    assert "mnist &lt;loss>" in lines_of_ours[1]  # each line escaped; only the breaks are HTML


def test_a_part_with_an_unknown_verdict_is_refused(study, tmp_path):
    report, _, _ = study
    claim = report.claims[-1]
    broken = replace(claim, parts=(claim.parts[0], replace(claim.parts[1], verdict="maybe")))
    with pytest.raises(ValueError, match="maybe"):
        write_report(replace(report, claims=[*report.claims[:-1], broken]), tmp_path / "nowhere")


def test_every_table_scrolls_inside_its_own_wrapper(study):
    report, out_dir, _ = study
    html_path, _ = write_report(report, out_dir)
    document = parse_html(html_path.read_text(encoding="utf-8"))
    wrappers = [node for node in all_nodes(document) if node.attrs.get("class") == "table-wrap"]
    assert len(wrappers) == len(document.find_all("table")) == 4  # claims, baselines, environment, timings
    assert all(len(wrapper.children) == 1 and wrapper.children[0].tag == "table" for wrapper in wrappers)


def test_html_shows_skipped_parts_environment_and_timings(study):
    report, out_dir, _ = study
    html_path, _ = write_report(report, out_dir)
    document = parse_html(html_path.read_text(encoding="utf-8"))
    tables = document.find_all("table")
    assert [[c.text() for c in row.find_all("td")] for row in tables[2].find_all("tbody")[0].find_all("tr")] \
        == [[key, value] for key, value in report.environment.items()]
    assert [[c.text() for c in row.find_all("td")] for row in tables[3].find_all("tbody")[0].find_all("tr")] \
        == [["shapes", "12.3 s"], ["dsprites", "4 min 05 s"], ["total", "2 h 03 min"]]
    skipped = document.find_all("ul")[-1]  # after the claims' lists of parts
    assert [item.text() for item in skipped.find_all("li")] == report.skipped


# ------------------------------------------------------------------------------------------ Markdown

def test_markdown_links_every_figure_to_a_nonempty_file_beside_it(study):
    report, out_dir, figures = study
    _, markdown_path = write_report(report, out_dir)
    links = re.findall(r"^!\[[^\n]*\]\(([^)\s]+)\)$", markdown_path.read_text(encoding="utf-8"), re.MULTILINE)
    assert len(links) == len(figures)
    linked = {}
    for link, name in zip(links, ["png", "png_same_name", "svg_inside", "svg_outside"], strict=True):
        assert not link.startswith(("/", "http")) and ".." not in link
        target = out_dir / unquote(link)
        assert target.is_file() and target.stat().st_size > 0
        assert target.read_bytes() == figures[name].read_bytes()
        linked[name] = link
    assert linked["svg_inside"] == "parts/curve.svg"  # inside the folder: linked where it is, not copied
    assert linked["png"].startswith("figures/") and linked["png_same_name"].startswith("figures/")
    assert linked["png"] != linked["png_same_name"]


def test_markdown_holds_the_same_claims_rule_and_command(study):
    report, out_dir, _ = study
    _, markdown_path = write_report(report, out_dir)
    lines = markdown_path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "# β-VAE reproduced"
    assert lines[lines.index("```bash") + 1] == report.command
    assert any(report.rule in line for line in lines)
    header = lines.index("| # | Claim | Paper | Reproducibility report | Ours | Verdict | Why |")
    rows = lines[header + 2:header + 2 + len(report.claims)]
    for row, claim in zip(rows, report.claims, strict=True):
        cells = markdown_cells(row)
        assert len(cells) == 7 and cells[5] == f"**{claim.verdict}**"
    assert lines[header + 2 + len(report.claims)] == ""


def test_special_characters_are_escaped_in_html_and_markdown(study):
    report, out_dir, _ = study
    html_path, markdown_path = write_report(report, out_dir)
    html_text, markdown = html_path.read_text(encoding="utf-8"), markdown_path.read_text(encoding="utf-8")
    assert TRICKY not in html_text and "&lt;codes&gt;" in html_text
    cells = [cell.text() for cell in parse_html(html_text).find_all("td")]
    assert TRICKY in cells and "x|y" in cells and "<&>" in cells

    row = next(line for line in markdown.splitlines() if line.startswith("| β") and "x" in line)
    assert markdown_cells(row) == [markdown_text(TRICKY), "x\\|y", "&lt;&amp;>"]
    assert "β &lt; 4 \\| β\\_norm &amp; \\*x\\* \\[a\\](b) \\`c\\` #1" == markdown_text(TRICKY)
    assert "\n\\# not a heading\n" in markdown and "\n1\\. not a list\n" in markdown
    assert "![Heatmap \\| of &lt;codes>](" in markdown


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(max_size=30), min_size=1, max_size=4))
def test_any_cell_text_survives_both_renderers(cells):
    table = Table([f"c{i}" for i in range(len(cells))], [cells])
    report = Report("t", "betavae reproduce", "smoke", "rule", [], [Section("s", tables=[table])], {}, {}, [])
    assert [td.text() for td in parse_html(render_html(report, {})).find_all("td")] == cells

    from betavae.study.report import render_markdown

    lines = render_markdown(report, {}).splitlines()
    row = lines[lines.index("| " + " | ".join(table.header) + " |") + 2]
    assert len(markdown_cells(row)) == len(cells)
    assert "<" not in row and not re.search(r"&(?!amp;|lt;)", row)


def test_format_seconds():
    assert [format_seconds(s) for s in (0.04, 59.94, 60, 3599, 3600, 86400)] \
        == ["0.0 s", "59.9 s", "1 min 00 s", "59 min 59 s", "1 h 00 min", "24 h 00 min"]


# -------------------------------------------------------------------------------------------- errors

@pytest.mark.parametrize("broken", ["missing", "empty"])
def test_missing_or_empty_figure_is_a_one_line_error_and_writes_nothing(study, broken):
    report, out_dir, figures = study
    bad = figures["png"].with_name("broken.png")
    if broken == "empty":
        bad.write_bytes(b"")
    before = sorted(out_dir.rglob("*"))
    section = replace(report.sections[1], figures=[*report.sections[1].figures, Figure(bad, "gone")])
    with pytest.raises(BetaVAEError) as error:
        write_report(replace(report, sections=[report.sections[0], section]), out_dir)
    assert str(bad) in str(error.value) and "\n" not in str(error.value)
    assert sorted(out_dir.rglob("*")) == before


def test_unknown_verdict_is_a_value_error(study, tmp_path):
    report, _, _ = study
    claims_ = [replace(report.claims[0], verdict="probably")]
    with pytest.raises(ValueError, match="probably"):
        write_report(replace(report, claims=claims_), tmp_path / "nowhere")
    assert not (tmp_path / "nowhere").exists()
    assert VERDICTS == ("held", "not held", "inconclusive")


def test_writes_are_atomic_and_a_rerun_gives_the_same_files(study):
    report, out_dir, _ = study
    paths = write_report(report, out_dir)
    first = {path: path.read_bytes() for path in out_dir.rglob("*") if path.is_file()}
    assert write_report(report, out_dir) == paths == (out_dir / "report.html", out_dir / "report.md")
    files = [path for path in out_dir.rglob("*") if path.is_file()]
    assert {path: path.read_bytes() for path in files} == first
    assert not [path for path in files if path.name.startswith(".") or path.suffix == ".tmp"]


def test_a_copy_never_replaces_a_different_file(study):
    report, out_dir, figures = study
    (out_dir / "figures").mkdir()
    (out_dir / "figures" / "heatmap.svg").write_text("<svg>someone else's</svg>")
    _, markdown_path = write_report(report, out_dir)
    assert (out_dir / "figures" / "heatmap.svg").read_text() == "<svg>someone else's</svg>"
    link = re.search(r"\]\((figures/heatmap[^)]*)\)", markdown_path.read_text()).group(1)
    assert link != "figures/heatmap.svg"
    assert (out_dir / link).read_bytes() == figures["svg_outside"].read_bytes()


# ------------------------------------------------------------------------------------------- browser

CLAIMS_LAYOUT = """() => {
    const table = document.querySelector('table.claims');
    const rows = [...table.querySelectorAll('tbody tr')];
    return {
        viewport: window.innerWidth,
        body: document.body.scrollWidth,
        page: document.documentElement.scrollWidth,
        images: [...document.images].map(i => [i.complete, i.naturalWidth, i.getBoundingClientRect().width]),
        wrap: [table.parentElement.scrollWidth, table.parentElement.clientWidth],
        header_height: table.querySelector('thead').getBoundingClientRect().height,
        rows: rows.map(row => [...row.cells].map(cell => {
            const box = cell.getBoundingClientRect();
            return {label: cell.dataset.label, top: box.top, left: box.left, right: box.right,
                    width: box.width, shown: box.height > 0 && cell.textContent.length > 0};
        })),
    };
}"""
DESKTOP = {"width": 1280, "height": 900}


@pytest.mark.slow
def test_report_fits_a_phone_in_chromium(study, browser):
    """On a phone the claims are cards: nothing scrolls sideways, every cell of a claim under the one
    before, its verdict right under its number; on a wide screen they are a table of rows."""
    report, out_dir, _ = study
    html_path, _ = write_report(report, out_dir)
    requests: list[str] = []
    page = browser.new_page(viewport=PHONE, device_scale_factor=2, is_mobile=True)
    wide = browser.new_page(viewport=DESKTOP, device_scale_factor=1)
    try:
        page.on("request", lambda request: requests.append(request.url))
        page.goto(html_path.as_uri(), wait_until="load")
        phone = page.evaluate(CLAIMS_LAYOUT)
        OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(OUTPUT_DIR / "report-phone.png"), full_page=True)
        wide.goto(html_path.as_uri(), wait_until="load")
        desktop = wide.evaluate(CLAIMS_LAYOUT)
    finally:
        page.close()
        wide.close()
    assert phone["viewport"] == PHONE["width"]
    assert phone["body"] <= phone["viewport"] and phone["page"] <= phone["viewport"], phone
    assert len(phone["images"]) == 4
    for complete, natural_width, shown_width in phone["images"]:
        assert complete and natural_width > 0 and 0 < shown_width <= PHONE["width"]
    assert phone["wrap"][0] <= phone["wrap"][1], "the claims should fit a phone without scrolling sideways"
    assert phone["header_height"] <= 1  # the column names are the cards' labels instead
    for cells in phone["rows"]:
        assert all(cell["shown"] and 0 <= cell["left"] and cell["right"] <= PHONE["width"] for cell in cells)
        tops = {cell["label"]: cell["top"] for cell in cells}
        in_order = sorted(tops, key=tops.get)
        assert in_order[:2] == ["#", "Verdict"], in_order  # the verdict right under the claim's number
        assert [label for label in in_order if label not in ("#", "Verdict")] \
            == [label for label in CLAIMS_HEADER if label not in ("#", "Verdict")]
    assert desktop["header_height"] > 1
    for cells in desktop["rows"]:
        assert len({round(cell["top"]) for cell in cells}) == 1  # one row, its cells side by side
        lefts = [cell["left"] for cell in cells]
        assert lefts == sorted(lefts) and len(set(lefts)) == len(lefts)
    assert [url for url in requests if not url.startswith(("file:", "data:"))] == []
