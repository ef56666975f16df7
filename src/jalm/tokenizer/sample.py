"""The tokenizer's sentence sample drawn in parallel: one shard job per input file, on jalm's executors.

Each job reservoir-samples sentences of its file (a quota proportional to the file's share of the
input bytes, with headroom) and counts the sentences it saw. The parent then draws how many sentences
each file gives from a multivariate hypergeometric over those counts, and takes that many at random
from the file's reservoir: the sample is a uniform draw without replacement over every sentence of
the corpus, as the single-process reservoir is (other sentences, though: the random streams differ),
so each file and source gives in proportion to its sentences. A file whose sentences are much shorter per byte than
the rest may need more than its quota: it is read again with a quota of what it must give, so the
draw stays exactly uniform (`sample_files_read_twice` counts them).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jalm.executors import Executor, Report, ignore_report
from jalm.jsonl import read_texts
from jalm.tokenizer.sentences import MAX_SENTENCE_CHARS, _chunks, _raw_sentences

HEADROOM = 1.25  # reservoir quota over the file's byte share: room for files denser in sentences
MIN_QUOTA = 64


@dataclass
class SampleJob:
    path: str
    quota: int  # the reservoir's size
    seed: int


def sample_file(job: SampleJob, report: Report = ignore_report) -> dict[str, Any]:
    """A uniform sample of up to `quota` sentences of one file, and the file's counts."""
    rng = random.Random(f"{job.seed}:{Path(job.path).name}")
    sample: list[str] = []
    documents = seen = cut = pending_docs = pending_bytes = 0
    for text in read_texts([job.path]):
        documents += 1
        pending_docs += 1
        pending_bytes += len(text)
        for long_sentence in _raw_sentences(text):
            cut += len(long_sentence) > MAX_SENTENCE_CHARS
            for sentence in _chunks(long_sentence, MAX_SENTENCE_CHARS):
                if seen < job.quota:
                    sample.append(sentence)
                else:
                    slot = rng.randrange(seen + 1)
                    if slot < job.quota:
                        sample[slot] = sentence
                seen += 1
        if pending_docs == 256:
            report(pending_docs, pending_bytes)
            pending_docs = pending_bytes = 0
    report(pending_docs, pending_bytes)
    return {"path": job.path, "sample": sample, "documents": documents, "seen": seen, "cut": cut}


def sample_parallel(
    files: list[Path], max_sentences: int, seed: int, runner: Executor, bar: Any = None
) -> tuple[list[str], dict[str, int]]:
    """Up to `max_sentences` sentences drawn uniformly over all files' sentences; (sample, counts)."""
    import numpy as np

    sizes = [max(1, Path(f).stat().st_size) for f in files]
    total = sum(sizes)
    jobs = [
        SampleJob(
            str(Path(f).absolute()), max(MIN_QUOTA, math.ceil(max_sentences * HEADROOM * size / total)), seed
        )
        for f, size in zip(files, sizes)
    ]
    results = runner.run(sample_file, jobs, bar)
    seen = np.array([r["seen"] for r in results], dtype=np.int64)
    wanted = min(max_sentences, int(seen.sum()))
    rng = np.random.default_rng(seed)
    counts = rng.multivariate_hypergeometric(seen, wanted, method="marginals") if wanted else seen * 0
    # A file that must give more sentences than its reservoir holds (denser in sentences than in bytes)
    # is sampled again with a quota of what it must give: the draw stays exactly uniform.
    short = [i for i, c in enumerate(counts.tolist()) if c > len(results[i]["sample"])]
    again = [SampleJob(jobs[i].path, int(counts[i]), seed) for i in short]
    for i, result in zip(short, runner.run(sample_file, again)):
        results[i] = result
    picker = random.Random(seed)
    sample: list[str] = []
    for result, count in zip(results, counts.tolist()):
        sample.extend(picker.sample(result["sample"], count))
    return sample, {
        "documents": sum(r["documents"] for r in results),
        "sentences_seen": int(seen.sum()),
        "sentences_used": len(sample),
        "long_sentences_cut": sum(r["cut"] for r in results),
        "sample_jobs": len(jobs),
        "sample_files_read_twice": len(short),
    }
