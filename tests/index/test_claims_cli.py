"""`verbatim check` and `verbatim eval-claims`, run as a user runs them."""

from __future__ import annotations

import json

from tests.conftest import SEED_ARTICLE
from tests.index.test_cli import run


def test_check_json_gives_the_verdict_and_verbatim_cited_quotes(seed_settings):
    result = run(["check", "--json", "Only 50 civilians were killed."], seed_settings)
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["verdict"] == "contradicted"
    assert payload["summary"] == "The sources contradict this claim."
    against = payload["sentences"][0]
    assert against["stance"] == "contradicts" and against["reason"] == "gives 973 where the claim says 50"
    assert against["quote"] in SEED_ARTICLE.read_text(encoding="utf-8")
    assert against["source"] == "The Times of Israel" and against["published"] == "2025-03-09"
    assert against["url"].startswith("https://www.timesofisrael.com/")


def test_check_prints_the_verdict_then_each_quote_with_its_source(seed_settings):
    result = run(["check", "More than 973 civilians were killed."], seed_settings)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "Supported. The sources support this claim."
    assert any(line.startswith("[1] supports (gives the same figure)") for line in lines)
    assert any("“The Syrian Observatory for Human Rights reported that more than 973 civilians" in line
               for line in lines)
    assert any("The Times of Israel — 2025-03-09" in line for line in lines)


def test_check_of_nothing_says_what_to_do(seed_settings):
    result = run(["check", "--json", "   "], seed_settings)
    assert result.returncode == 1
    assert "empty" in json.loads(result.stdout)["error"]


def test_eval_claims_reports_accuracy_per_label_on_each_part(seed_settings, tmp_path):
    claims = tmp_path / "claims.jsonl"
    doc = "syria-vows-accountability"
    rows = [
        {"id": "s1", "question": "More than 973 civilians were killed.", "evidence": [doc], "labels": {doc: "SUPPORT"}},
        {"id": "c1", "question": "Only 50 civilians were killed.", "evidence": [doc], "labels": {doc: "CONTRADICT"}},
        {"id": "n1", "question": "Riverton Rovers won the regional football cup.", "evidence": [doc], "labels": {}},
    ]
    claims.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    result = run(["eval-claims", "--json", "--corpus", str(seed_settings.corpus_dir), "--queries", str(claims),
                  "--index-dir", str(tmp_path / "index")], seed_settings)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    whole = summary["parts"]["all"]
    assert whole["claims"] == 3 and whole["balanced_accuracy"] == 1.0
    assert {label: entry["accuracy"] for label, entry in whole["labels"].items()} == {
        "SUPPORT": 1.0, "CONTRADICT": 1.0, "NONE": 1.0}
    assert summary["parts"]["report"]["claims"] + summary["parts"]["tune"]["claims"] == 3
    assert summary["tuned"] is False and summary["thresholds"]["addressed"] > 0
