"""`cai constitution ...`: inspect, validate, import, lint, route and compare constitutions, and see which sections
rows used; the work is cai_cli/constitution's."""

from __future__ import annotations

import sys

import typer

from ..constitution.routing import DEFAULT_RANKER
from . import options as o
from .apps import constitution_app
from .plumbing import command


@command(constitution_app, "show")
def constitution_show(file: o.ConstitutionArg = "default", json_out: o.PrintJsonOpt = False, passage_tokens: o.PassageTokensOpt = None):
    """Print a constitution as a table: its principles (a document: its sections, with tier, `when`, hash), hard constraints, comparisons, behaviours.

    --json prints the same as one JSON object (a document's passages with their estimated tokens and hashes).

    Example:

        cai constitution show default
        cai constitution show assistant --json | jq '.sections[].passages'
    """
    import json

    from rich.console import Console

    from ..constitution import constitution_table, load_constitution
    from ..constitution.display import constitution_json
    from ..constitution.passages import budget_for
    from ..constitution.requests import sized

    charter = sized(load_constitution(file), budget_for(None, override=passage_tokens))
    if json_out:
        print(json.dumps(constitution_json(charter), indent=2, ensure_ascii=False))
    else:
        Console().print(constitution_table(charter))


@command(constitution_app, "lint")
def constitution_lint(file: o.ConstitutionArg, json_out: o.PrintJsonOpt = False, passage_tokens: o.PassageTokensOpt = None):
    """Find what will not reach the model as meant: passages over budget, lead-ins without their list, routed non-guidance, tiers without a question, constraints no passage states, behaviours no section describes. Exit 1 when it finds something.

    Example:

        cai constitution lint policy.md --passage-tokens 256
    """
    import json

    from ..constitution import load_constitution
    from ..constitution.lint import format_findings, lint
    from ..constitution.passages import budget_for
    from ..constitution.requests import sized

    charter = sized(load_constitution(file), budget_for(None, override=passage_tokens))
    findings = lint(charter)
    if json_out:
        print(json.dumps({"constitution": charter.source, "hash": charter.hash, "passage_tokens": charter.passage_tokens,
                          "findings": [f.as_dict() for f in findings]}, indent=2, ensure_ascii=False))
    else:
        print(format_findings(charter, findings))
    if findings:
        raise typer.Exit(1)


@command(constitution_app, "check")
def constitution_check(file: o.ConstitutionArg):
    """Validate a constitution (a Markdown document and its header, native YAML/JSON, Hugging Face recipe JSON or Anthropic's JSON); exit 2 on the first problem.

    Example:

        cai constitution check constitutions/default.yaml
        cai constitution check constitutions/assistant.md
    """

    from ..constitution import load_constitution

    c = load_constitution(file)
    units = f"{len(c.sections)} sections, {len(c.critiques)} routed" if c.is_document else f"{len(c.critiques)} critique principles"
    tiers = f", tiers {' > '.join(c.priorities)}" if c.priorities else ""
    print(
        f"{c.source}: ok ({c.format} format, {units}, {len(c.hard_constraints)} hard constraints, "
        f"{len(c.comparisons)} comparison questions, {len(c.few_shot)} few-shot examples{tiers}, hash {c.hash})"
    )
    if c.is_document and not c.priorities:
        print(f"{c.source}: no tiers or hard constraints declared; `cai constitution import {file}` drafts a header", file=sys.stderr)


@command(constitution_app, "schema")
def constitution_schema(shape: o.ShapeArg = o.Shape.list):
    """Print the JSON Schema of the native list format, or of a Markdown constitution's header (for editors and CI validation).

    Example:

        cai constitution schema > constitution.schema.json
        cai constitution schema document > header.schema.json
    """
    import json

    from ..constitution.schema import json_schema

    print(json.dumps(json_schema(shape), indent=2))


@command(constitution_app, "import")
def constitution_import(file: o.MarkdownArg, sidecar: o.SidecarOpt = False):
    """Draft the header of a Markdown constitution that has none: tiers guessed per section, the hard constraints found, each guess's reason as a comment.

    The YAML goes to stdout (the reasons also to stderr): check and edit it, then put it between `---` lines
    at the top of the document, or beside it as DOC.header.yaml (--sidecar writes that file).

    Example:

        cai constitution import policy.md --sidecar && cai constitution show policy.md
    """
    from ..constitution.draft import import_header

    import_header(file, sidecar)


@command(constitution_app, "diff")
def constitution_diff(old: o.ConstitutionArg, new: o.ConstitutionArg):
    """List the sections (or principles), hard constraints, comparisons and behaviours that changed, were added or removed, by id and content hash; exit 1 when they differ (as `diff` does).

    Example:

        cai constitution diff policy-v1.md policy-v2.md
    """
    from ..constitution import load_constitution
    from ..constitution.diff import diff_constitutions, format_changes

    before, after = load_constitution(old), load_constitution(new)
    changes = diff_constitutions(before, after)
    print(format_changes(before, after, changes))
    if changes:
        raise typer.Exit(1)


@command(constitution_app, "route")
def constitution_route(rows: o.RouteRowsArg, constitution: o.ConstitutionOpt = None, top: o.RouteTopOpt = 3, json_out: o.PrintJsonOpt = False,
                       passage_tokens: o.PassageTokensOpt = None, ranker: o.RankerOpt = DEFAULT_RANKER):
    """Show why each row gets its passage: per row, the passages (and hard constraints) relevance routing ranks first, with their scores and the words that matched.

    A * marks the comparably relevant ones a round is drawn among. Under --ranker dense or hybrid each also shows its BM25 score, its cosine and its closest sentence. --json prints one object per row.

    Example:

        cai constitution route examples/red_team.jsonl -c assistant --top 5
    """
    import json

    from rich.console import Console

    from ..constitution import load_constitution
    from ..constitution.display import route_table
    from ..constitution.passages import budget_for
    from ..constitution.requests import sized
    from ..constitution.route import route_rows

    charter = sized(load_constitution(constitution), budget_for(None, override=passage_tokens))
    explained = route_rows(rows, charter, top, ranker)
    if json_out:
        for rid, info in explained:
            print(json.dumps({"id": rid, **info}, ensure_ascii=False))
    else:
        Console().print(route_table(explained, charter))


@command(constitution_app, "coverage")
def constitution_coverage(rows: o.CoverageRowsArg, constitution: o.ConstitutionOpt = None, json_out: o.PrintJsonOpt = False):
    """How often critique rounds used each section (or principle) and tier, and which sections were never used.

    Example:

        cai constitution coverage out/r2.jsonl -c assistant
    """
    import json

    from rich.console import Console

    from ..constitution.coverage import coverage_table, read_coverage

    cov, charter = read_coverage(None if rows == "-" else rows, constitution)
    if json_out:
        print(json.dumps(cov.as_dict(), indent=2))
    else:
        Console().print(coverage_table(cov, charter))
