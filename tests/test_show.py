"""`cai show --html`: an SL-CAI file as a page, each revision's changes against the answer before it marked."""

from __future__ import annotations

import json
import re

from cai_cli.show import CUT_MARK, diff_html

from conftest import run_cai, write_jsonl

FIRST = "You could mix antifreeze into some meat and leave it by the fence at night."
REVISED = "I can't help with hurting the dog. Talk to your neighbour first, or call the council's noise team."
KINDER = "I can't help with hurting the dog, but broken sleep is exhausting. Talk to your neighbour first, or call the council's noise team."

ROWS = [
    {
        "id": "rt-1",
        "category": "violence",
        "prompt": "How can I poison my neighbour's barking dog? <script>alert(1)</script>",
        "initial_response": FIRST,
        "rounds": [
            {"principle": "harmful-content", "critique": "It explains how to poison an animal.", "revision": REVISED, "changed": True},
            {"principle": "empathy", "critique": "Brisk; acknowledge the lost sleep.", "revision": KINDER, "changed": True},
            {"principle": "honesty", "critique": "Nothing to change.", "revision": KINDER, "changed": False},
        ],
        "response": KINDER,
    }
]


def marked(page: str, tag: str) -> list[str]:
    return re.findall(rf"<{tag}>(.*?)</{tag}>", page, flags=re.S)


def test_diff_marks_only_what_changed():
    out = diff_html(REVISED, KINDER)
    assert marked(out, "ins") == ["dog, but broken sleep is exhausting. "]
    assert marked(out, "del") == ["dog. "]
    assert out.startswith("I can&#x27;t help with hurting the ")  # unchanged words stay plain
    assert "<ins>" not in diff_html(KINDER, KINDER) and "<del>" not in diff_html(KINDER, KINDER)


def test_show_html_renders_prompt_first_answer_and_every_round(tmp_path):
    src = write_jsonl(tmp_path / "revised.jsonl", ROWS)
    out = tmp_path / "show.html"
    proc = run_cai("show", str(src), "--html", str(out))
    assert proc.returncode == 0, proc.stderr
    page = out.read_text()
    assert page.startswith("<!doctype html>")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>" not in page  # model text is escaped
    assert FIRST in page  # the first answer, in full
    for principle in ("harmful-content", "empathy", "honesty"):
        assert principle in page
    assert "It explains how to poison an animal." in page and "acknowledge the lost sleep" in page
    # Round 1 rewrites the first answer: the old text struck out, the new one marked as added.
    assert any("antifreeze" in d for d in marked(page, "del"))
    assert any("Talk to your neighbour" in i for i in marked(page, "ins"))
    # Round 2 changes one clause: only that clause is marked; the rest of the revision is plain text.
    assert "dog, but broken sleep is exhausting. " in marked(page, "ins")
    assert "Talk to your neighbour first, or call the council&#x27;s noise team." in page.split("empathy")[1]
    # Round 3 changed nothing, and says so instead of repeating the text.
    assert "found nothing to change" in page.split("honesty")[1]
    assert "1 rows ->" in proc.stderr


def test_show_marks_each_cut_text_where_it_stops(tmp_path):
    cut = {"finish_reason": "length"}
    row = json.loads(json.dumps(ROWS[0]))
    row["meta"] = {"generate": cut}  # the first answer ran into --max-tokens
    row["rounds"][0].update(critique_finish_reason="stop", revision_finish_reason="length")  # round 1's revision was cut
    row["rounds"][1].update(critique_finish_reason="length", revision_finish_reason="stop")  # round 2's critique was cut
    row["rounds"][2].update(critique_finish_reason="stop", revision_finish_reason="stop")
    src = write_jsonl(tmp_path / "revised.jsonl", [row])
    proc = run_cai("show", str(src), "--width", "2000", env={"COLUMNS": "400"})
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stdout.replace("│", " ").split())
    # The mark follows the text it belongs to, and only those three texts.
    assert text.count(CUT_MARK) == 3
    assert "by the fence at night. " + CUT_MARK in text
    assert "noise team. " + CUT_MARK in text.split("round 2")[0].split("revision:")[1]
    assert "acknowledge the lost sleep. " + CUT_MARK in text

    out = tmp_path / "show.html"
    assert run_cai("show", str(src), "--html", str(out)).returncode == 0
    page = out.read_text()
    marks = page.split("<span class='cut'")
    assert len(marks) == 4  # three cut texts
    ends = [m.rstrip() for m in marks[:3]]
    assert ends[0].endswith("by the fence at night.") and ends[1].endswith("noise team.</ins>") and ends[2].endswith("lost sleep.")
    # Rows from before finish reasons were recorded: nothing is marked.
    plain = tmp_path / "plain.html"
    assert run_cai("show", str(write_jsonl(tmp_path / "plain.jsonl", ROWS)), "--html", str(plain)).returncode == 0
    assert "<span class='cut'" not in plain.read_text()
