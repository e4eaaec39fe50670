"""The behavioural suite (model/checklist.py): generation, counting, and the two scorers."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from model.checklist import (
    ChecklistError,
    ExpectLabel,
    ExpectMove,
    ExpectNotNegative,
    ExpectSameLabel,
    PredictorScorer,
    Report,
    Test,
    build_suite,
    main,
    run_suite,
    typo,
)
from model.checkpoint import DEFAULT_CHECKPOINT
from model.predictor import Predictor
from tests.conftest import reinitialised
from tests.model.shipped_gates import CHECKLIST_SMALL_RUN_CEILINGS


def fake_scorer(table: dict[str, float], calls: list[list[str]]):  # type: ignore[no-untyped-def]
    def score(texts: list[str]) -> list[float]:
        calls.append(texts)
        return [table[t] for t in texts]

    return score


# -- (a) generation -----------------------------------------------------------------------------


def test_the_suite_is_deterministic_and_every_test_has_cases() -> None:
    suite = build_suite()
    assert suite == build_suite()
    assert len({t.name for t in suite}) == len(suite)
    assert {t.kind for t in suite} == {"MFT", "INV", "DIR"}
    assert all(t.cases for t in suite)
    assert 300 <= sum(len(t.cases) for t in suite) <= 2500
    for test in suite:
        assert len(set(test.cases)) == len(test.cases), test.name
        for case in test.cases:
            assert all(text.strip() for text in case)
            if test.kind == "MFT":
                assert len(case) == 1
            else:
                assert len(case) == 2 and case[0] != case[1], case


def test_the_seed_changes_the_sample_but_not_the_tests() -> None:
    a, b = build_suite(seed=1), build_suite(seed=2)
    assert [t.name for t in a] == [t.name for t in b]
    assert [t.cases for t in a] != [t.cases for t in b]


def test_a_smaller_cap_gives_at_most_that_many_cases() -> None:
    assert all(1 <= len(t.cases) <= 5 for t in build_suite(max_cases=5))


def test_a_typo_is_one_slip_that_keeps_the_first_letter() -> None:
    rng = random.Random(0)
    for word in ["bad", "good", "excellent", "disappointing"] * 25:
        slipped = typo(word, rng)
        assert slipped != word and slipped[0] == word[0]
        assert abs(len(slipped) - len(word)) <= 1
        assert sorted(slipped) == sorted(word) or len(slipped) != len(word)
    assert typo("wonderful", random.Random(3)) == typo("wonderful", random.Random(3))
    with pytest.raises(ValueError):
        typo("ok", rng)


def test_typo_and_negation_cases_read_as_intended() -> None:
    suite = {t.name: t for t in build_suite()}
    assert all(" not " in c[0] or "n't" in c[0] or "far from" in c[0] or "Nothing" in c[0]
               for c in suite["negated positive"].cases)
    assert all(c[1] == c[0].upper() for c in suite["upper case"].cases)
    assert all(c[1].startswith(c[0]) for c in suite["positive sentence added"].cases)


# -- (b) counting with a fake scorer --------------------------------------------------------


def test_mft_failures_are_counted_exactly() -> None:
    table = {"a": 0.9, "b": 0.2, "c": 0.5, "d": 0.49}
    tests = [
        Test("pos", "MFT", (("a",), ("b",), ("c",), ("d",)), ExpectLabel("positive")),
        Test("neg", "MFT", (("a",), ("b",), ("c",), ("d",)), ExpectLabel("negative")),
        Test("not neg", "MFT", (("a",), ("b",), ("c",)), ExpectNotNegative(floor=0.3)),
    ]
    report = run_suite(tests, fake_scorer(table, []), "fake")
    assert [(r.n, r.failures) for r in report.tests] == [(4, 2), (4, 2), (3, 1)]
    assert report.n == 11 and report.failures == 5
    assert report.overall_failure_rate == pytest.approx(5 / 11)
    assert report.tests[0].examples[0].startswith("'b' -> negative 0.80, positive 0.20")


def test_inv_and_dir_failures_are_counted_exactly() -> None:
    table = {"x": 0.8, "x2": 0.55, "x3": 0.45, "x4": 0.5, "y": 0.3, "y2": 0.41, "y3": 0.39}
    tests = [
        # label flips: x->x3 and y->x2 flip; x->x2 and y->y3 do not
        Test("inv", "INV", (("x", "x2"), ("x", "x3"), ("y", "x2"), ("y", "y3")), ExpectSameLabel()),
        # up: x->x2 drops 0.25 (fail), y->y2 rises (pass), x2->x4 drops 0.05 < tolerance (pass)
        Test("up", "DIR", (("x", "x2"), ("y", "y2"), ("x2", "x4")), ExpectMove(1, tolerance=0.1)),
        # down: y->y2 rises 0.11 (fail), y->y3 rises 0.09 (pass), x->y falls (pass)
        Test("down", "DIR", (("y", "y2"), ("y", "y3"), ("x", "y")), ExpectMove(-1, tolerance=0.1)),
    ]
    report = run_suite(tests, fake_scorer(table, []))
    assert [r.failures for r in report.tests] == [2, 1, 1]
    assert report.tests[1].examples == ["'x' 0.80 -> 'x2' 0.55"]


def test_every_distinct_text_is_scored_once_in_one_call() -> None:
    calls: list[list[str]] = []
    tests = [
        Test("a", "MFT", (("p",), ("q",)), ExpectLabel("positive")),
        Test("b", "INV", (("p", "q"), ("q", "r")), ExpectSameLabel()),
    ]
    run_suite(tests, fake_scorer({"p": 0.9, "q": 0.1, "r": 0.2}, calls))
    assert calls == [["p", "q", "r"]]


def test_examples_are_capped_and_the_report_serialises() -> None:
    cases = tuple((f"t{i}",) for i in range(10))
    report = run_suite(
        [Test("all fail", "MFT", cases, ExpectLabel("positive"))],
        fake_scorer({f"t{i}": 0.1 for i in range(10)}, []),
        "fake@1",
    )
    body = json.loads(json.dumps(report.to_dict()))
    assert body == {
        "tests": [{
            "name": "all fail", "kind": "MFT", "n": 10, "failures": 10, "failure_rate": 1.0,
            "examples": [f"'t{i}' -> negative 0.90, positive 0.10, expected positive" for i in range(3)],
        }],
        "overall_failure_rate": 1.0,
        "n": 10,
        "model": "fake@1",
    }


def test_a_scorer_that_loses_texts_is_an_error() -> None:
    tests = [Test("a", "MFT", (("p",), ("q",)), ExpectLabel("positive"))]
    with pytest.raises(ChecklistError, match="1 scores for 2 texts"):
        run_suite(tests, lambda texts: [0.5])


# -- (c) the shipped checkpoint ------------------------------------------------------------


def assert_report_shape(report: Report, suite: list[Test]) -> None:
    assert [r.name for r in report.tests] == [t.name for t in suite]
    assert [r.n for r in report.tests] == [len(t.cases) for t in suite]
    for result in report.tests:
        assert 0 <= result.failures <= result.n
        assert len(result.examples) == min(result.failures, 3)
    assert 0.0 <= report.overall_failure_rate <= 1.0


def small_run_over_ceilings(report: Report) -> dict[str, float]:
    rates = {"overall": report.overall_failure_rate, **{t.name: t.failure_rate for t in report.tests}}
    ceilings = CHECKLIST_SMALL_RUN_CEILINGS
    return {name: rates[name] for name, ceiling in ceilings.items() if rates[name] > ceiling}


def test_a_small_run_against_the_shipped_model() -> None:
    scorer = PredictorScorer()
    suite = build_suite(max_cases=4, labels=scorer.labels)
    report = run_suite(suite, scorer)
    assert report.model.startswith(f"{DEFAULT_CHECKPOINT.name}@")
    assert_report_shape(report, suite)
    assert not small_run_over_ceilings(report), report.to_dict()


def test_the_small_run_ceilings_refuse_a_random_model() -> None:
    scorer = PredictorScorer()
    scorer.predictor = Predictor(reinitialised(scorer.predictor.checkpoint))
    suite = build_suite(max_cases=4, labels=scorer.labels)
    report = run_suite(suite, scorer)
    assert_report_shape(report, suite)
    assert small_run_over_ceilings(report)


def test_the_cli_prints_json_and_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--max-cases", "2", "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert set(body) == {"tests", "overall_failure_rate", "n", "model"}
    assert body["n"] == sum(t["n"] for t in body["tests"])
    assert set(body["tests"][0]) == {"name", "kind", "n", "failures", "failure_rate", "examples"}
    assert main(["--max-cases", "2"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith(f"model: {DEFAULT_CHECKPOINT.name}@") and table[-1].startswith("overall")
    assert len(table) == 2 + len(body["tests"]) + 1


def test_the_cli_gate_and_bad_arguments(tiny_checkpoint_dir: Path, tmp_path: Path) -> None:
    assert main(["--checkpoint", str(tiny_checkpoint_dir), "--max-cases", "2", "--fail-above", "0"]) == 1
    assert main(["--checkpoint", str(tmp_path / "missing"), "--max-cases", "2"]) == 2
    assert main(["--max-cases", "0"]) == 2


# -- (e) three-class models -------------------------------------------------------------------


def test_a_three_class_model_gets_the_neutral_test_and_a_binary_one_does_not() -> None:
    binary = {t.name for t in build_suite(max_cases=5)}
    three = {t.name for t in build_suite(max_cases=5, labels=("negative", "neutral", "positive"))}
    assert three - binary == {"neutral statements"}
    assert {"app, delivery and service complaints", "polite negatives"} <= binary


def test_three_class_answers_are_judged_by_label_and_by_the_polar_probability() -> None:
    three = {
        "pos": {"negative": 0.1, "neutral": 0.3, "positive": 0.6},
        "neu": {"negative": 0.3, "neutral": 0.6, "positive": 0.1},  # polar: 0.25, negative side
        "neg": {"negative": 0.7, "neutral": 0.2, "positive": 0.1},
        "neu-leaning-pos": {"negative": 0.1, "neutral": 0.5, "positive": 0.4},
    }
    tests = [
        Test("neutral", "MFT", (("neu",), ("pos",), ("neu-leaning-pos",)), ExpectLabel("neutral")),
        Test("not negative", "MFT", (("neu",), ("pos",), ("neg",)), ExpectNotNegative()),
        Test("same side", "INV", (("pos", "neu-leaning-pos"), ("pos", "neu")), ExpectSameLabel()),
        Test("up", "DIR", (("neu", "pos"), ("pos", "neg")), ExpectMove(1)),
    ]
    report = run_suite(tests, lambda texts: [three[t] for t in texts], "three")
    # neutral: "pos" fails; not negative: only "neg" fails (a neutral answer is not negative,
    # whatever its polar probability); same side: pos (0.86) -> neu (0.25) flips; up: pos -> neg.
    assert [(r.n, r.failures) for r in report.tests] == [(3, 1), (3, 1), (2, 1), (2, 1)]


def test_a_model_without_the_polar_labels_is_a_clear_error() -> None:
    tests = [Test("t", "MFT", (("a",),), ExpectLabel("positive"))]
    with pytest.raises(ChecklistError, match="no \\['negative'\\] label"):
        run_suite(tests, lambda texts: [{"positive": 0.5, "other": 0.5} for _ in texts])
