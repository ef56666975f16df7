"""Continuous batching (`jalm.generate.batched`) on real tiny models, GPT-NeoX (trained) and GPT-2 (random):
jobs decoded together give exactly what each gives alone and what `complete()` (`model.generate`) gives,
whatever their settings; a job that ends leaves the batch while the others go on; a cancelled job is freed."""

from __future__ import annotations

import shutil

import pytest

from jalm.generate import Sampling, complete, encode_prompt, load
from jalm.generate.batched import BatchDecoder, Job, generate_batched

PROMPTS = ["吾輩は猫である。", "日本の首都は", "昔々、あるところに", "京都の", "東京", "", "第3章", "今日は"]
SETTINGS = [
    Sampling(max_new_tokens=30, do_sample=False),
    Sampling(max_new_tokens=6, do_sample=False),  # leaves early
    Sampling(max_new_tokens=30, do_sample=False, stop=["の"]),
    Sampling(max_new_tokens=20, do_sample=True, seed=3, temperature=0.9, top_k=20, num_return_sequences=2),
    Sampling(max_new_tokens=25, do_sample=True, seed=7, top_p=0.8, repetition_penalty=1.2),
    Sampling(max_new_tokens=12, do_sample=True, seed=11, num_return_sequences=3),  # empty prompt: from </s>
    Sampling(max_length=20, do_sample=False, repetition_penalty=1.3),
    Sampling(max_new_tokens=1, do_sample=False),  # done in the prefill, never decoded
]


@pytest.fixture(scope="module")
def neox(tiny_model_dir):
    return load(tiny_model_dir)


@pytest.fixture(scope="module")
def gpt2(tiny_model_dir, tmp_path_factory):
    """A random GPT-2 layout (learned absolute positions) with the tiny model's tokenizer."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    out = tmp_path_factory.mktemp("gpt2") / "model"
    shutil.copytree(tiny_model_dir, out)
    (out / "model.safetensors").unlink()
    (out / "generation_config.json").unlink()
    _, tokenizer = load(tiny_model_dir)
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_embd=64,
        n_layer=2,
        n_head=4,
        n_positions=128,
        bos_token_id=1,
        eos_token_id=2,
    )
    GPT2LMHeadModel(config).save_pretrained(out)
    return load(out)


def requests(tokenizer):
    return [(encode_prompt(tokenizer, p), s) for p, s in zip(PROMPTS, SETTINGS)]


@pytest.mark.parametrize("layout", ["neox", "gpt2"])
def test_jobs_together_give_what_each_gives_alone_and_what_generate_gives(layout, request):
    model, tokenizer = request.getfixturevalue(layout)
    reqs = requests(tokenizer)
    together = generate_batched(model, tokenizer, reqs)
    alone = [generate_batched(model, tokenizer, [r])[0] for r in reqs]
    assert together == alone
    assert together == [complete(model, tokenizer, ids, sampling) for ids, sampling in reqs]
    assert [len(r) for r in together] == [s.num_return_sequences for s in SETTINGS]
    assert together[1][0].tokens == 6 and together[7][0].tokens == 1
    if layout == "neox":  # the trained model writes text, and the stop string cut one reply
        assert together[2][0].finish_reason == "stop" and "の" not in together[2][0].text
        assert all(r.text for r in together[0] + together[3])
    # A reordered batch, with the longest job first, changes nothing either.
    assert generate_batched(model, tokenizer, reqs[::-1]) == together[::-1]


def test_a_job_that_ends_leaves_the_batch_while_the_others_go_on(neox):
    model, tokenizer = neox
    decoder = BatchDecoder(model, tokenizer)
    long = Job(encode_prompt(tokenizer, "吾輩は猫である。"), Sampling(max_new_tokens=24, do_sample=False))
    short = Job(encode_prompt(tokenizer, "日本の"), Sampling(max_new_tokens=4, do_sample=False))
    sampled = Job(encode_prompt(tokenizer, "京都"), Sampling(max_new_tokens=10, do_sample=True, seed=1))
    for job in (long, short, sampled):
        assert decoder.start(job)
    seen = []
    while decoder.active:
        finished = decoder.step()
        seen.append((decoder.rows, [job is short for job in finished]))
    # Three jobs of 1 row each (the prefill made each one's first token); `short` leaves after 3 steps,
    # `sampled` after 9, `long` after 23: the rows left running after each step.
    assert [rows for rows, _ in seen[:3]] == [3, 3, 2] and seen[2][1] == [True]
    assert [rows for rows, _ in seen[3:9]] == [2] * 5 + [1] and len(seen) == 23
    assert decoder.peak_rows == 3 and decoder.steps == 23
    for job in (long, short, sampled):
        assert job.results == generate_batched(model, tokenizer, [(job.prompt_ids, job.sampling)])[0]
        assert job.keys == [] and job.ids is None  # the cache is freed as the job ends


def test_a_cancelled_job_is_dropped_at_the_next_step(neox):
    model, tokenizer = neox
    decoder = BatchDecoder(model, tokenizer)
    flag = {"cancel": False}
    gone = Job(
        encode_prompt(tokenizer, "昔々"),
        Sampling(max_new_tokens=50, do_sample=False),
        cancelled=lambda: flag["cancel"],
    )
    stays = Job(encode_prompt(tokenizer, "昔々"), Sampling(max_new_tokens=8, do_sample=False))
    decoder.start(gone), decoder.start(stays)
    decoder.step()
    flag["cancel"] = True
    assert decoder.step() == [gone] and decoder.active == [stays]
    assert gone.results[0].finish_reason == "cancelled" and gone.results[0].tokens == 2
    assert gone.keys == []
    while decoder.active:
        decoder.step()
    assert stays.results == generate_batched(model, tokenizer, [(stays.prompt_ids, stays.sampling)])[0]


class _Recording(BatchDecoder):
    """Keeps every job's logits, step by step."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.logits: dict[int, list] = {}

    def _advance(self, job, logits):
        self.logits.setdefault(id(job), []).append(logits.clone())
        return super()._advance(job, logits)


def run_recording(model, tokenizer, reqs) -> list[list]:
    decoder = _Recording(model, tokenizer)
    jobs = [Job(ids, sampling) for ids, sampling in reqs]
    for job in jobs:
        decoder.start(job)
    while decoder.active:
        decoder.step()
    return [decoder.logits[id(job)] for job in jobs]


def test_every_steps_logits_are_bit_identical_alone_and_in_the_batch(neox):
    """Stronger than equal tokens: the batch changes no bit of any job's logits at any step (without the
    padding to a multiple of 4 rows, on the development CPU only the prefill steps were: 7 of 168)."""
    import torch

    model, tokenizer = neox
    reqs = requests(tokenizer)[:6]
    together = run_recording(model, tokenizer, reqs)
    for req, steps in zip(reqs, together):
        (alone,) = run_recording(model, tokenizer, [req])
        assert len(alone) == len(steps) > 0
        assert all(torch.equal(a, b) for a, b in zip(alone, steps))
