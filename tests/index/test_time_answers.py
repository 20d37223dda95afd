"""Answers that know what is newest, over an invented corpus of floods reported over days (12 → 27 → 41 dead)."""

from __future__ import annotations

import json

import pytest

from index.engine import Engine
from index.errors import InvalidQuestionError
from tests.index.llm_support import FakeModel, fake_model, llm_settings
from tests.index.test_cli import run
from tests.index.time_support import DAY, FINAL_TOLL, FIRST_TOLL, SECOND_TOLL, article_text, build_vellmoor


@pytest.fixture(scope="module")
def vellmoor_settings(tmp_path_factory, encoders):
    return build_vellmoor(tmp_path_factory.mktemp("vellmoor"), encoders)


@pytest.fixture(scope="module")
def engine(vellmoor_settings, encoders) -> Engine:
    return Engine.load(vellmoor_settings, encoders=encoders)


def cited(answer) -> list[str]:
    return [c.doc_id for c in answer.citations]


def test_the_newest_figure_leads_and_earlier_reports_follow_newest_first(engine):
    answer = engine.ask("How many people died in the Vellmoor floods?", as_of=DAY("2026-03-20"))
    assert answer.answered
    assert [c.quote for c in answer.citations] == [FINAL_TOLL, SECOND_TOLL, FIRST_TOLL]
    assert answer.text.startswith(FINAL_TOLL + " [1] (Riverline Radio, 2026-03-09) Earlier reports: ")
    assert answer.text.index("[2] (Vellmoor Evening Post, 2026-03-04)") < answer.text.index(
        "[3] (The Dunmarsh Courier, 2026-03-02)")
    payload = answer.to_json()
    assert payload["latest_report"] == {"n": 1, "figure": "41", "date": "2026-03-09", "source": "Riverline Radio"}
    assert [(r["figure"], r["date"]) for r in payload["earlier_reports"]] == [("27", "2026-03-04"),
                                                                            ("At least 12", "2026-03-02")]
    for citation in answer.citations:  # quotes stay verbatim
        assert citation.quote in article_text(citation.doc_id)


def test_as_of_changes_the_answer(engine):
    question = "How many people died in the Vellmoor floods?"
    early = engine.ask(question, as_of=DAY("2026-03-03"))
    assert early.answered and cited(early) == ["courier-floods-first-toll"] and "12" in early.text
    middle = engine.ask(question, as_of=DAY("2026-03-05"))
    assert [c.quote for c in middle.citations] == [SECOND_TOLL, FIRST_TOLL]
    assert "41" not in middle.text  # not published yet on 5 March


def test_yesterday_narrows_to_the_day_before(engine):
    answer = engine.ask("What did emergency officials say yesterday?", as_of=DAY("2026-03-05"))
    assert answer.answered and set(cited(answer)) == {"post-floods-toll-rises"}
    festival = engine.ask("What happened in Vellmoor yesterday?", as_of=DAY("2026-11-25"))
    assert set(cited(festival)) == {"post-lantern-festival"}
    assert set(cited(engine.ask("What happened in Vellmoor?", as_of=DAY("2026-11-25")))) != {"post-lantern-festival"}


def test_last_week_narrows_to_the_calendar_week_before(engine):
    answer = engine.ask("How many people were killed last week?", as_of=DAY("2026-03-11"))
    assert [c.quote for c in answer.citations] == [SECOND_TOLL, FIRST_TOLL]  # 2-8 March: not the 9 March toll


def test_in_a_month_narrows_to_that_month(engine):
    march = engine.ask("What did Mayor Elsbeth Quarrie say in March?", as_of=DAY("2026-05-01"))
    april = engine.ask("What did Mayor Elsbeth Quarrie say in April?", as_of=DAY("2026-05-01"))
    assert march.answered and set(cited(march)) == {"radio-floods-final-toll"}
    assert april.answered and set(cited(april)) == {"courier-flood-inquiry"}
    assert not march.not_mentioned  # "March" is a time word, not a name the sources must mention


def test_a_day_is_mentioned_by_the_article_published_on_it(engine):
    # The coroner's report of 2 March never writes its date: it is still what happened that day.
    reported = engine.ask("What did the county coroner say on March 2?", as_of=DAY("2026-05-01"))
    assert reported.not_mentioned == [] and reported.answered
    assert set(cited(reported)) == {"courier-floods-first-toll"}, reported.text
    unreported = engine.ask("What did the county coroner say on March 15?", as_of=DAY("2026-05-01"))
    assert not unreported.answered and unreported.not_mentioned == ["March 15"], unreported.text


@pytest.mark.parametrize("question", ["How many people have died in the Vellmoor floods since March 1?",
                                      "How many people died in the Vellmoor floods between March 1 and March 10?"])
def test_a_day_that_bounds_a_range_need_not_be_mentioned(engine, question):
    # "since March 1" asks for what was reported from that day on, not for what happened on it.
    answer = engine.ask(question, as_of=DAY("2026-03-20"))
    assert answer.not_mentioned == [] and answer.answered, answer.text
    assert answer.citations[0].quote == FINAL_TOLL, answer.text


def test_a_day_an_article_names_by_its_weekday_is_mentioned(engine):
    # The Courier of Monday 2 March says the river burst its banks "on Sunday": that is 1 March.
    answer = engine.ask("Where did the Harrowbeck river burst its banks on March 1?", as_of=DAY("2026-03-20"))
    assert answer.not_mentioned == [], answer.text
    assert "courier-floods-first-toll" in cited(answer), answer.text
    other = engine.ask("Where did the Harrowbeck river burst its banks on March 3?", as_of=DAY("2026-03-20"))
    assert other.not_mentioned == ["March 3"], other.text


def test_a_range_with_no_source_falls_back_with_an_honest_note(engine):
    answer = engine.ask("What happened in Vellmoor in January?", as_of=DAY("2026-05-01"))
    assert answer.citations and answer.note is not None
    assert answer.note.startswith("No source was published from 2026-01-01 to 2026-01-31")


def test_as_of_is_a_hard_limit_even_when_nothing_was_published_by_then(engine):
    question = "How many people died in the Vellmoor floods?"
    before_all = engine.ask(question, as_of=DAY("2026-03-01"))  # the first report is of 2 March
    assert not before_all.answered and before_all.citations == [] and before_all.to_json()["latest_report"] is None
    assert before_all.note == "No source had been published by 2026-03-01."
    assert engine.search(question, as_of=DAY("2020-01-01")) == []
    assert engine.timeline("Vellmoor floods", as_of=DAY("2026-03-01")) == []
    # A range with nothing in it falls back to the other dates, but never to articles after the asking day.
    january = engine.ask("What happened in Vellmoor in January?", as_of=DAY("2026-03-03"))
    assert january.citations and set(cited(january)) == {"courier-floods-first-toll"}
    assert january.note is not None and january.note.endswith("of other dates up to 2026-03-03.")


def test_a_range_keeps_undated_articles_only_when_nothing_dated_is_in_it():
    import numpy as np

    from index.retrieval.dated import by_time
    from index.retrieval.time_words import TimeFrame

    days = np.array([0, DAY("2026-03-02").toordinal(), DAY("2026-03-09").toordinal()])
    fused = [(0, 3.0), (1, 2.0), (2, 1.0)]
    march = TimeFrame(DAY("2026-03-01"), DAY("2026-03-31"))
    assert by_time(fused, march, days, 0.0) == ([(1, 2.0), (2, 1.0)], None)
    as_of = TimeFrame(end=DAY("2026-03-05"), known_until=DAY("2026-03-05"))  # undated: not known later: kept
    assert by_time(fused, as_of, days, 0.0) == ([(0, 3.0), (1, 2.0)], None)
    april = TimeFrame(DAY("2026-04-01"), DAY("2026-04-30"), known_until=DAY("2026-05-01"))
    kept, note = by_time(fused, april, days, 0.0)
    assert kept == fused and note is not None and note.startswith("No source was published from 2026-04-01")


def test_latest_and_arabic_time_words_lead_with_the_newest_report(engine):
    latest = engine.ask("How many people were killed in Vellmoor so far?", as_of=DAY("2026-11-25"))
    assert latest.citations[0].quote == FINAL_TOLL
    arabic = engine.ask("كم عدد القتلى في فيضانات Vellmoor حتى الآن؟", as_of=DAY("2026-03-06"))
    assert arabic.answered and [c.quote for c in arabic.citations] == [SECOND_TOLL, FIRST_TOLL]
    assert " تقارير سابقة: " in arabic.text and "Earlier reports" not in arabic.text  # the question's language


def test_a_timeline_is_in_date_order_and_quotes_verbatim(engine):
    events = engine.timeline("Vellmoor floods", as_of=DAY("2026-12-01"))
    dates = [event.date for event in events]
    assert dates == sorted(dates) and len(events) >= 5
    assert dates[0] == "2026-03-01"  # "burst its banks … on Sunday", in the 2 March report
    assert events[0].dated_by == "sentence" and events[0].citation.published == "2026-03-02"
    assert {FIRST_TOLL, SECOND_TOLL, FINAL_TOLL} <= {event.quote for event in events}
    for event in events:
        assert event.quote in article_text(event.citation.doc_id)
    assert [e.date for e in engine.timeline("Vellmoor floods", as_of=DAY("2026-03-05"))][-1] <= "2026-03-05"


def test_as_of_must_be_a_date(engine):
    with pytest.raises(InvalidQuestionError):
        engine.ask("How many people died?", as_of="2026-03-05")  # type: ignore[arg-type]


def test_cli_as_of_and_timeline(vellmoor_settings):
    result = run(["ask", "--json", "--as-of", "2026-03-05", "How many people died in the Vellmoor floods?"],
                 vellmoor_settings)
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["latest_report"]["figure"] == "27" and payload["earlier_reports"][0]["figure"] == "At least 12"
    text = run(["ask", "--as-of", "2026-03-05", "How many people died in the Vellmoor floods?"], vellmoor_settings)
    assert "Vellmoor Evening Post — 2026-03-04" in text.stdout
    timeline = run(["timeline", "--json", "Vellmoor floods"], vellmoor_settings)
    assert timeline.returncode == 0, timeline.stderr
    events = json.loads(timeline.stdout)
    assert [e["date"] for e in events] == sorted(e["date"] for e in events)
    assert all(set(e) >= {"date", "quote", "citation"} and e["quote"] == e["citation"]["quote"] for e in events)
    bad = run(["ask", "--as-of", "9 March", "How many people died?"], vellmoor_settings)
    assert bad.returncode == 2 and "YYYY-MM-DD" in bad.stderr


def test_eval_asks_each_question_on_its_question_date(engine, tmp_path):
    from index.evaluation import evaluate, load_questions

    queries = tmp_path / "dated.jsonl"
    question = "How many people died in the Vellmoor floods?"
    queries.write_text("\n".join(json.dumps(record) for record in [
        {"id": "early", "question": question, "question_date": "2026-03-05", "answer_contains_any": ["27"]},
        {"id": "late", "question": question, "asked_at": "2026-03-20T08:00:00Z", "answer_contains_any": ["41"]},
    ]), encoding="utf-8")
    loaded = load_questions(queries)
    assert [q.asked_on for q in loaded] == [DAY("2026-03-05"), DAY("2026-03-20")]
    results = {r.id: r for r in evaluate(engine, loaded)}
    assert results["early"].right and "41" not in results["early"].answer
    assert results["late"].right and results["late"].answer.startswith(FINAL_TOLL)


# ---------------------------------------------------------------- written answers (ANSWER_MODE=llm)


@pytest.fixture(scope="module")
def model_server():
    with fake_model() as running:
        yield running


def written_engine(vellmoor_settings, model_server, encoders, model: str) -> Engine:
    return Engine.load(llm_settings(vellmoor_settings, model_server, model), encoders=encoders)


def test_a_written_answer_keeps_the_figure_history_renumbered_and_the_model_sees_it(
        vellmoor_settings, model_server, encoders):
    engine = written_engine(vellmoor_settings, model_server, encoders, "figures-newest-first")
    answer = engine.ask("How many people died in the Vellmoor floods?", as_of=DAY("2026-03-20"))
    assert answer.mode == "llm"
    assert [c.quote for c in answer.citations] == [FINAL_TOLL, SECOND_TOLL]
    payload = answer.to_json()
    # The reports point at the written answer's citations (the 12 report is not cited, so not listed).
    assert payload["latest_report"] == {"n": 1, "figure": "41", "date": "2026-03-09", "source": "Riverline Radio"}
    assert [(r["n"], r["figure"]) for r in payload["earlier_reports"]] == [(2, "27")]
    sent = FakeModel.recorded.requests[-1]["body"]["messages"][-1]["content"]
    history = sent.split("The figure as reported, newest first:\n")[1].splitlines()
    assert [line.split(" [")[0] for line in history] == ["- 41", "- 27", "- At least 12"]
    assert history[0].endswith("(Riverline Radio, 2026-03-09)")


def test_a_written_sentence_may_not_lead_with_an_earlier_figure(vellmoor_settings, model_server, encoders):
    engine = written_engine(vellmoor_settings, model_server, encoders, "figures-older-first")
    answer = engine.ask("How many people died in the Vellmoor floods?", as_of=DAY("2026-03-20"))
    assert answer.mode == "llm-partial" and answer.written is not None and answer.written.dropped == 1
    assert answer.text == "Officials said on 9 March that 41 people had died. [1]"
    assert [c.quote for c in answer.citations] == [FINAL_TOLL]
    assert answer.to_json()["latest_report"]["n"] == 1 and answer.to_json()["earlier_reports"] == []


def test_a_written_answer_keeps_the_time_note(vellmoor_settings, model_server, encoders):
    question = "How many people died in the Vellmoor floods in January?"
    extractive = Engine.load(vellmoor_settings, encoders=encoders).ask(question, as_of=DAY("2026-03-20"))
    written = written_engine(vellmoor_settings, model_server, encoders, "figures-newest-first").ask(
        question, as_of=DAY("2026-03-20"))
    assert written.mode == "llm" and extractive.note is not None
    assert written.note == extractive.note and written.note.startswith("No source was published from 2026-01-01")


# ---------------------------------------------------------------- checking claims about a figure that changed


def stances(checked) -> dict[str, str]:
    return {judged.citation.quote: judged.stance for judged in checked.sentences}


def test_an_earlier_report_of_a_figure_is_no_contradiction(engine):
    newest = engine.check("41 people died in the Vellmoor floods.", as_of=DAY("2026-03-20"))
    assert newest.verdict == "supported" and not newest.contradicting
    assert stances(newest) == {FINAL_TOLL: "supports", FIRST_TOLL: "earlier report"}
    earlier = next(s for s in newest.sentences if s.stance == "earlier report")
    assert earlier.reason == "an earlier report (2026-03-02): 12, since updated"
    older = engine.check("At least 12 people were killed in the Vellmoor floods.", as_of=DAY("2026-03-20"))
    assert older.verdict == "outdated" and older.summary.startswith("The sources reported this, but later reports")
    assert stances(older) == {FIRST_TOLL: "supports", FINAL_TOLL: "later report"}


def test_a_figure_from_a_middle_report_in_other_words_is_outdated_not_contradicted(engine):
    # "The death toll ... rose to 27" shares no word with the claim but the place: its figure ties them.
    middle = engine.check("27 people died in the Vellmoor floods", as_of=DAY("2026-03-20"))
    assert middle.verdict == "outdated", middle.summary
    assert stances(middle) == {SECOND_TOLL: "supports", FINAL_TOLL: "later report", FIRST_TOLL: "earlier report"}


@pytest.mark.parametrize("claim", ["27 homes were flooded in Vellmoor", "27 people were injured in the Vellmoor floods",
                                   "27 people were rescued from the Vellmoor floods"])
def test_the_same_figure_counting_something_else_does_not_support_a_claim(engine, claim):
    # "The death toll ... rose to 27" gives the figure, but of the dead: meaning alone (MiniLM similarity
    # 0.65-0.72 for these) must not make it support a claim about homes, the injured or the rescued.
    checked = engine.check(claim, as_of=DAY("2026-03-20"))
    assert SECOND_TOLL not in stances(checked) and checked.verdict not in {"supported", "outdated"}, checked.summary


def test_a_claim_is_checked_as_of_a_day(engine, vellmoor_settings):
    claim = "At least 12 people were killed in the Vellmoor floods."
    back_then = engine.check(claim, as_of=DAY("2026-03-03"))  # the 41 report is not known yet
    assert back_then.verdict == "supported" and stances(back_then) == {FIRST_TOLL: "supports"}
    assert engine.check(claim, as_of=DAY("2026-03-01")).verdict == "not addressed"
    result = run(["check", claim, "--as-of", "2026-03-03", "--json"], settings=vellmoor_settings)
    payload = json.loads(result.stdout)
    assert payload["verdict"] == "supported" and {s["published"] for s in payload["sentences"]} == {"2026-03-02"}
    later = json.loads(run(["check", claim, "--as-of", "2026-03-20", "--json"], settings=vellmoor_settings).stdout)
    assert later["verdict"] == "outdated"


def test_an_outdated_claim_is_shown_in_discord_with_its_earlier_and_later_reports(engine):
    from bot.discord.cogs.check import check_messages

    older = engine.check("At least 12 people were killed in the Vellmoor floods.", as_of=DAY("2026-03-20"))
    text = "\n".join(embed.description or "" for embeds in check_messages(older, "all 3 indexed articles")
                     for embed in embeds)
    assert "**Outdated.**" in text and "✅ Supports [" in text and "🕒 Later report [" in text


def test_a_day_is_searched_alone_so_its_article_is_found_among_many_better_matches(tmp_path, encoders):
    # 30 invented council reports from May match the question's words better than the one from 10 June;
    # ranked first and filtered by date after, the June report would fall outside the candidates (5 × 4).
    from tests.index.quality_support import build_engine, write_jsonl

    may = [{"id": f"may-{day}", "title": f"Brackenford harbour council decides on the budget ({day} May)",
            "text": f"The Brackenford harbour council decided on {day} May to raise the harbour budget for new "
                    f"cranes and dredging. Council members voted on the harbour budget decision.",
            "published": f"2026-05-{day:02d}", "source": "Brackenford Gazette"} for day in range(1, 31)]
    june = {"id": "june-ferries", "title": "Ferry timetable changes",
            "text": "The ferry timetable changes next month, the operator said. Evening sailings move earlier.",
            "published": "2026-06-10", "source": "Brackenford Gazette"}
    corpus = write_jsonl(tmp_path / "corpus.jsonl", [*may, june])
    engine = build_engine(corpus, tmp_path / "index", encoders, candidate_pool=5)
    answer = engine.ask("What did the harbour council decide yesterday?", as_of=DAY("2026-06-11"))
    assert answer.note is None, answer.note  # there is a source of that day: no fallback
    assert set(cited(answer)) == {"june-ferries"}, answer.text
    # Without time words the May reports lead, as before.
    assert engine.search("What did the harbour council decide?", k=1)[0].doc_id.startswith("may-")


def test_rows_in_time_narrows_only_a_range_that_holds_some_and_not_all():
    import numpy as np

    from index.retrieval.dated import rows_in_time
    from index.retrieval.time_words import TimeFrame

    days = np.asarray([DAY("2026-05-01").toordinal()] * 4 + [DAY("2026-06-10").toordinal()] * 2 + [0])
    june = TimeFrame(DAY("2026-06-10"), DAY("2026-06-10"))
    assert rows_in_time(june, days, None).tolist() == [4, 5]
    assert rows_in_time(june, days, (3, 6)).tolist() == [4, 5]  # within one document's rows
    assert rows_in_time(june, days, np.asarray([0, 5, 6])).tolist() == [5]  # within a server's sources
    assert rows_in_time(june, days, (0, 4)) == (0, 4)  # nothing in range there: searched as before
    assert rows_in_time(TimeFrame(DAY("2026-07-01"), None), days, None) is None  # nothing dated in range
    assert rows_in_time(TimeFrame(DAY("2026-01-01"), DAY("2026-12-31")), days[:6], None) is None  # all in range
    assert rows_in_time(TimeFrame(newest=True), days, None) is None  # "latest" is no range
