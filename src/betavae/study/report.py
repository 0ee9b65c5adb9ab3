"""The report of ``betavae reproduce``: one HTML file and one Markdown file from the study's numbers.

Pure rendering: the caller has trained, measured and drawn; this module lays the results out.
``report.html`` is self-contained (figures embedded as ``data:`` URIs, inline CSS, no script,
nothing fetched), so it opens from disk or an e-mail attachment, and it fits a phone's width:
on a narrow screen the claims table becomes one card per claim, read top to bottom, and the
other tables scroll sideways inside their own box. ``report.md`` says the same in
GitHub-flavoured Markdown for reading in a repository, with its figures as files beside it.

Order, in both: title, scale, the command that reruns the study, the verdict rule and the claims
table (each claim: the paper's result, the reproducibility report's, ours with its spread, the
verdict and why; a claim judged in parts lists each part on its own line with its verdict),
then the caller's sections (baselines table, figures per part), the parts skipped, the
environment and the time each part took.

A figure that is missing or empty is a :class:`~betavae.errors.BetaVAEError` raised before
anything is written: the report never names a figure that is not there.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from betavae.errors import BetaVAEError
from betavae.files import atomic_write_bytes, atomic_write_text, make_folder
from betavae.study.claims import VERDICTS, ClaimPart

HTML_FILE = "report.html"
MARKDOWN_FILE = "report.md"
# Where report.md's figures that live outside the report's folder are copied to.
FIGURES_DIR = "figures"
MEDIA_TYPES = {".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
# What the report says beside its link to the poster: a browser runs its models only over HTTP.
POSTER_NOTE = ("every grid cell's models in the browser; it needs a web server: betavae poster DIR --serve, "
               "or any static server on DIR")
CLAIMS_HEADER = ["#", "Claim", "Paper", "Reproducibility report", "Ours", "Verdict", "Why"]


@dataclass(frozen=True)
class Figure:
    """A PNG or SVG file already written (inside the report's folder or anywhere) and its caption."""

    path: Path
    caption: str


@dataclass(frozen=True)
class Table:
    """Cells already formatted as text; every row as long as the header."""

    header: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclass(frozen=True)
class ClaimRow:
    """One claim of the paper, the results for it, and the verdict on ours.

    A claim judged in parts lists them in ``parts`` (shown one per line, each with its verdict);
    ``ours`` then holds the same in one line, and ``why`` how the parts make the verdict.
    """

    number: int | str  # 6b: a second claim under one number
    claim: str
    paper: str
    reproducibility_report: str
    ours: str  # with its spread: "+0.21 ± 0.06 (3 seeds)"
    verdict: str  # one of VERDICTS
    why: str  # one line: how the verdict follows from the numbers
    parts: tuple[ClaimPart, ...] = ()


@dataclass(frozen=True)
class Section:
    title: str
    paragraphs: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)


@dataclass(frozen=True)
class Report:
    title: str
    command: str  # the exact command that reruns the study
    scale: str  # "smoke | small | paper", and a sentence on what it trained
    rule: str  # the verdict rule, in words
    claims: list[ClaimRow]
    sections: list[Section]  # baselines table, figures per part, …
    environment: dict[str, str]  # versions, device, threads, …
    timings: dict[str, float]  # seconds per part
    skipped: list[str]  # parts skipped and why
    poster: str | None = None  # the interactive poster's page, relative to the report's folder


def write_report(report: Report, out_dir: Path) -> tuple[Path, Path]:
    """Write ``out_dir/report.html`` and ``out_dir/report.md`` atomically; return their paths.

    Every figure is read (and checked) before anything is written. Figures outside ``out_dir``
    are copied into ``out_dir/figures/`` for the Markdown file, never over a different file.
    """
    _check(report)
    contents = _read_figures(report)
    out_dir = make_folder(out_dir, "report folder")
    targets = _markdown_targets(contents, out_dir)
    for source, target in targets.items():
        destination = out_dir / target
        if source != destination.resolve():
            atomic_write_bytes(destination, contents[source])
    html_path, markdown_path = out_dir / HTML_FILE, out_dir / MARKDOWN_FILE
    atomic_write_text(html_path, render_html(report, contents))
    atomic_write_text(markdown_path, render_markdown(report, {s: quote(t) for s, t in targets.items()}))
    return html_path, markdown_path


def _check(report: Report) -> None:
    for claim in report.claims:
        for verdict in (claim.verdict, *(part.verdict for part in claim.parts)):
            if verdict not in VERDICTS:
                raise ValueError(f"claim {claim.number} has verdict {verdict!r}, not one of {VERDICTS}")
    for table in _tables(report):
        for row in table.rows:
            if len(row) != len(table.header):
                raise ValueError(f"table {table.caption or table.header!r}: row {row!r} has {len(row)} "
                                 f"cells for {len(table.header)} columns")


def _tables(report: Report) -> list[Table]:
    return [table for section in report.sections for table in section.tables]


def _figures(report: Report) -> list[Figure]:
    return [figure for section in report.sections for figure in section.figures]


def _read_figures(report: Report) -> dict[Path, bytes]:
    """Each figure's bytes by its resolved path; a one-line error for a missing, empty or odd one."""
    contents: dict[Path, bytes] = {}
    for figure in _figures(report):
        path = Path(figure.path)
        if path.suffix.lower() not in MEDIA_TYPES:
            raise BetaVAEError(f"figure {path} is not a {', '.join(MEDIA_TYPES)} file; "
                               f"save it as PNG or SVG to put it in the report")
        try:
            data = path.read_bytes()
        except OSError as error:
            raise BetaVAEError(f"figure {path} cannot be read ({error.strerror or error}); the report "
                               f"names only figures that exist: draw it first or leave it out") from None
        if not data:
            raise BetaVAEError(f"figure {path} is empty (0 bytes); "
                               f"the report names only figures that exist: draw it again or leave it out")
        contents[path.resolve()] = data
    return contents


def _markdown_targets(contents: dict[Path, bytes], out_dir: Path) -> dict[Path, str]:
    """Each figure's path relative to ``out_dir``, as POSIX text, choosing copies' names.

    A copy keeps the figure's name unless another figure of the report takes it or a
    different file lies there already; then it gets the first 8 hex digits of its SHA-256.
    """
    root = out_dir.resolve()
    targets: dict[Path, str] = {}
    for source in contents:
        if source.is_relative_to(root):
            targets[source] = source.relative_to(root).as_posix()
    taken = set(targets.values())
    for source, data in contents.items():
        if source in targets:
            continue
        name = f"{FIGURES_DIR}/{source.name}"
        existing = out_dir / name
        if name in taken or (existing.exists() and not _holds(existing, data)):
            name = f"{FIGURES_DIR}/{source.stem}-{hashlib.sha256(data).hexdigest()[:8]}{source.suffix}"
        targets[source] = name
        taken.add(name)
    return targets


def _holds(path: Path, data: bytes) -> bool:
    return path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data


def format_seconds(seconds: float) -> str:
    """``12.3 s``, ``4 min 05 s``, ``2 h 03 min``: the timings table's cells."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, whole = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {whole:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


# ---------------------------------------------------------------------------------------------- HTML

CSS = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d1d1f;
       background: #fff; overflow-wrap: anywhere; }
main { max-width: 72rem; margin: 0 auto; padding: 1rem; }
h1 { font-size: 1.6rem; line-height: 1.25; margin: 0.5rem 0 1rem; }
h2 { font-size: 1.25rem; margin: 2rem 0 0.5rem; border-bottom: 1px solid #ddd; padding-bottom: 0.2rem; }
pre { background: #f4f4f6; padding: 0.75rem; border-radius: 6px; overflow-x: auto; white-space: pre; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 0.9em;
       overflow-wrap: normal; }
.table-wrap { overflow-x: auto; margin: 0.75rem 0; -webkit-overflow-scrolling: touch; }
table { border-collapse: collapse; font-size: 0.92rem; overflow-wrap: normal; }
caption { caption-side: top; text-align: left; padding: 0.25rem 0; color: #555; }
th, td { border: 1px solid #d6d6da; padding: 0.35rem 0.55rem; text-align: left; vertical-align: top; }
th { background: #f4f4f6; }
table.claims td { min-width: 7rem; }
table.claims td:first-child { min-width: 0; }
table.claims td.ours { min-width: 24rem; }
.verdict { font-weight: 600; white-space: nowrap; }
.verdict-held { background: #d8f0dc; color: #0b5a1f; }
.verdict-not-held { background: #f9d7d7; color: #8b1010; }
.verdict-inconclusive { background: #e6e6e9; color: #333; }
ul.parts { margin: 0; padding: 0; list-style: none; }
ul.parts li { margin: 0 0 0.3rem; }
.part-name { font-weight: 600; }
.effect { overflow-wrap: anywhere; }
.part-why { color: #555; font-size: 0.9em; }
span.verdict { font-size: 0.82em; padding: 0 0.35em; border-radius: 4px; }
@media (max-width: 44rem) {  /* a phone: one card per claim, labels from data-label */
  table.claims, table.claims tbody, table.claims td { display: block; width: 100%; }
  table.claims thead { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
  table.claims tr { display: flex; flex-direction: column; border: 1px solid #d6d6da; border-radius: 6px;
                    margin: 0 0 0.9rem; overflow: hidden; }
  table.claims td, table.claims td.ours { order: 2; border: 0; border-top: 1px solid #ececef; min-width: 0; }
  table.claims td:first-child { order: 0; border-top: 0; background: #f4f4f6; font-weight: 700; }
  table.claims td.verdict { order: 1; }  /* the verdict under the claim's number, before the evidence */
  table.claims td::before { content: attr(data-label); display: block; font-size: 0.8rem; font-weight: 600;
                            color: #555; }
  table.claims td:first-child::before, table.claims td.verdict::before { display: inline; }
  table.claims td:first-child::before { content: "Claim "; font-size: inherit; color: inherit; }
  table.claims td.verdict::before { content: "Verdict: "; }
}
figure { margin: 1rem 0; }
figure img { display: block; max-width: 100%; height: auto; }
figcaption { color: #444; font-size: 0.92rem; margin-top: 0.3rem; }
.rule { background: #f7f7f9; border-left: 4px solid #8a8a96; padding: 0.5rem 0.75rem; }
"""


def render_html(report: Report, contents: dict[Path, bytes]) -> str:
    """The report as one HTML document; ``contents`` holds each figure's bytes by resolved path."""
    e = html.escape
    parts = ['<!DOCTYPE html>', '<html lang="en">', "<head>", '<meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{e(report.title)}</title>", f"<style>{CSS}</style>", "</head>", "<body>", "<main>",
             f"<h1>{e(report.title)}</h1>",
             f"<p><strong>Scale:</strong> {e(report.scale)}</p>",
             "<p><strong>Rerun with:</strong></p>", f"<pre><code>{e(report.command)}</code></pre>",
             *([f'<p><strong>Explore every run:</strong> <a href="{e(quote(report.poster))}">the interactive '
                f"poster</a>, {e(POSTER_NOTE)}</p>"] if report.poster else []),
             "<h2>Claims</h2>", f'<p class="rule"><strong>Verdict rule:</strong> {e(report.rule)}</p>',
             _html_claims(report.claims)]
    tables = figures = 0
    for section in report.sections:
        parts.append(f"<h2>{e(section.title)}</h2>")
        parts += [f"<p>{e(paragraph)}</p>" for paragraph in section.paragraphs]
        for table in section.tables:
            tables += 1
            caption = f"<strong>Table {tables}.</strong> {e(table.caption)}" if table.caption else ""
            parts.append(_html_table(table.header, table.rows, caption))
        for figure in section.figures:
            figures += 1
            path = Path(figure.path)
            data = base64.b64encode(contents[path.resolve()]).decode("ascii")
            source = f"data:{MEDIA_TYPES[path.suffix.lower()]};base64,{data}"
            caption = f"<strong>Figure {figures}.</strong> {e(figure.caption)}"
            parts.append(f'<figure><img src="{source}" alt="{e(figure.caption)}">'
                         f"<figcaption>{caption}</figcaption></figure>")
    parts.append("<h2>Skipped</h2>")
    if report.skipped:
        parts.append("<ul>" + "".join(f"<li>{e(reason)}</li>" for reason in report.skipped) + "</ul>")
    else:
        parts.append("<p>Nothing: every part ran.</p>")
    parts.append("<h2>Environment</h2>")
    parts.append(_html_table(["Setting", "Value"], [[k, v] for k, v in report.environment.items()]))
    parts.append("<h2>Time taken</h2>")
    parts.append(_html_table(["Part", "Time"], [[k, format_seconds(v)] for k, v in report.timings.items()]))
    parts += ["</main>", "</body>", "</html>", ""]
    return "\n".join(parts)


def _html_table(header: list[str], rows: list[list[str]], caption_html: str = "") -> str:
    e = html.escape
    caption = f"<caption>{caption_html}</caption>" if caption_html else ""
    head = "<tr>" + "".join(f"<th>{e(cell)}</th>" for cell in header) + "</tr>"
    body = "".join("<tr>" + "".join(f"<td>{e(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<div class="table-wrap"><table>{caption}<thead>{head}</thead><tbody>{body}</tbody></table></div>'


def _verdict_class(verdict: str) -> str:
    return "verdict verdict-" + verdict.replace(" ", "-")


def _html_claims(claims: list[ClaimRow]) -> str:
    """The claims table; each cell carries its column's name in ``data-label`` for the phone's cards."""
    e = html.escape
    head = "<tr>" + "".join(f"<th>{e(cell)}</th>" for cell in CLAIMS_HEADER) + "</tr>"
    rows = []
    for claim in claims:
        cells = [(e(str(claim.number)), ""), (e(claim.claim), ""), (e(claim.paper), ""),
                 (e(claim.reproducibility_report), ""), (_html_ours(claim), "ours"),
                 (e(claim.verdict), _verdict_class(claim.verdict)), (e(claim.why), "")]
        labelled = zip(CLAIMS_HEADER, cells, strict=True)
        rows.append("<tr>" + "".join(_labelled_cell(label, content, css_class)
                                     for label, (content, css_class) in labelled) + "</tr>")
    return (f'<div class="table-wrap"><table class="claims"><thead>{head}</thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>")


def _labelled_cell(label: str, content_html: str, css_class: str) -> str:
    css = f' class="{css_class}"' if css_class else ""
    return f'<td{css} data-label="{html.escape(label)}">{content_html}</td>'


def _html_ours(claim: ClaimRow) -> str:
    """Ours: the effect with its spread, or for a claim in parts one line per part with its verdict."""
    e = html.escape
    if not claim.parts:
        return e(claim.ours)
    items = "".join(
        f'<li><span class="part-name">{e(part.name)} {e(part.expected)}</span>: '
        f'<span class="effect">{e(part.ours)} '
        f'<span class="{_verdict_class(part.verdict)}">{e(part.verdict)}</span></span>'
        + (f' <span class="part-why">({e(part.why)})</span>' if part.why and part.verdict != "held" else "")
        + "</li>"
        for part in claim.parts)
    return f'<ul class="parts">{items}</ul>'


# ------------------------------------------------------------------------------------------ Markdown

# Characters GitHub's Markdown would read as formatting anywhere in a line (`|` would end a table
# cell); `<` and `&` become entities instead, as they could start an HTML tag or an entity.
_MARKDOWN_INLINE = re.compile(r"([\\`*_\[\]|~])")
# What makes a line a heading, quote, list item, setext underline or thematic break.
_MARKDOWN_LINE_START = re.compile(r"^([#>+=-]|\d{1,9}(?=[.)](\s|$)))")


def markdown_text(text: str, line_start: bool = False) -> str:
    """``text`` as Markdown that shows exactly ``text`` on one line, every formatting character escaped.

    ``line_start``: the text begins a line of a paragraph or list item, where ``#``, ``>``,
    ``-``, ``1.`` … would start a block; inside a table cell they would not.
    """
    text = " ".join(text.split())
    text = text.replace("&", "&amp;").replace("<", "&lt;")
    text = _MARKDOWN_INLINE.sub(r"\\\1", text)
    match = _MARKDOWN_LINE_START.match(text) if line_start else None
    if match:  # "1." needs its dot escaped, "#" or "-" itself
        end = match.end()
        text = text[:end] + "\\" + text[end:] if text[0].isdigit() else "\\" + text
    return text


def render_markdown(report: Report, targets: dict[Path, str]) -> str:
    """The report in GitHub-flavoured Markdown; ``targets`` holds each figure's link by resolved path."""
    t = markdown_text
    fence = "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", report.command)), default=0))
    lines = [f"# {t(report.title)}", "", f"**Scale:** {t(report.scale)}", "",
             "**Rerun with:**", "", f"{fence}bash", report.command, fence, "",
             *([f"**Explore every run:** [the interactive poster]({quote(report.poster)}), "
                f"{t(POSTER_NOTE)}", ""] if report.poster else []),
             "## Claims", "", f"**Verdict rule:** {t(report.rule)}", ""]
    claim_rows = [[str(c.number), c.claim, c.paper, c.reproducibility_report, _markdown_ours(c), c.verdict,
                   c.why] for c in report.claims]
    lines += _markdown_table(CLAIMS_HEADER, claim_rows, bold_column=5)
    tables = figures = 0
    for section in report.sections:
        lines += ["", f"## {t(section.title)}"]
        for paragraph in section.paragraphs:
            lines += ["", t(paragraph, line_start=True)]
        for table in section.tables:
            tables += 1
            lines.append("")
            if table.caption:
                lines += [f"*Table {tables}.* {t(table.caption)}", ""]
            lines += _markdown_table(table.header, table.rows)
        for figure in section.figures:
            figures += 1
            link = targets[Path(figure.path).resolve()]
            lines += ["", f"![{t(figure.caption)}]({link})", "", f"*Figure {figures}.* {t(figure.caption)}"]
    lines += ["", "## Skipped", ""]
    lines += [f"- {t(reason, line_start=True)}" for reason in report.skipped] or ["Nothing: every part ran."]
    lines += ["", "## Environment", ""]
    lines += _markdown_table(["Setting", "Value"], [[k, v] for k, v in report.environment.items()])
    lines += ["", "## Time taken", ""]
    lines += _markdown_table(["Part", "Time"], [[k, format_seconds(v)] for k, v in report.timings.items()])
    return "\n".join(lines) + "\n"


def _markdown_ours(claim: ClaimRow) -> str | list[str]:
    """The claim's effect, or one line per part (GitHub breaks a table cell's lines at ``<br>``)."""
    return [part.text() for part in claim.parts] or claim.ours


def _markdown_table(header: list[str], rows: list[list[str | list[str]]], bold_column: int | None = None
                    ) -> list[str]:
    """A GFM table; a cell given as a list of lines shows them one under another."""
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cells) + " |"

    def cell(content: str | list[str], column: int) -> str:
        if isinstance(content, list):
            return "<br>".join(markdown_text(text) for text in content)
        text = markdown_text(content)
        return f"**{text}**" if column == bold_column and text else text

    return ([line([markdown_text(h) for h in header]), line(["---"] * len(header))]
            + [line([cell(text, column) for column, text in enumerate(row)]) for row in rows])
