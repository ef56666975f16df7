"""Build data/sft/demo.jsonl.zst: a small Japanese instruction set in chat `messages` format.

Every conversation is made from the bundled public-domain Aozora Bunko works (data/corpus/aozora.jsonl.zst)
with answers derived from the text by rule, no model involved, so a tiny model can visibly start to
learn the tasks in a CPU minute and anyone can check an answer. Tasks (several Japanese phrasings
each): the first sentence of a passage, the title and author of a work from its opening, the rest of
a sentence from its first half, a word repeated N times, the character count of a short phrase,
katakana→hiragana and hiragana→katakana of a word, and the sentences of a passage that contain a
given word. About 15 % of the conversations open with a system message and about 15 % have two
user/assistant turns (two tasks on the same work).

Deterministic (fixed seed, no network): running it twice writes the same bytes. Each record carries
`task`, `source` (the Aozora file path), `title` and `author` besides `messages`, so attribution
travels with the data. No evaluation text is used; `jalm.sft.decontaminate` removes nothing from it
(checked here and in tests/test_sft_data.py).

    .venv/bin/python scripts/make_sft_demo_data.py [OUT]    # default data/sft/demo.jsonl.zst
"""

from __future__ import annotations

import json
import random
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import zstandard

from jalm.jsonl import read_records

REPO = Path(__file__).resolve().parents[1]
AOZORA = REPO / "data" / "corpus" / "aozora.jsonl.zst"
DEFAULT_OUT = REPO / "data" / "sft" / "demo.jsonl.zst"
SEED = 20240607
CONVERSATIONS = 3000
SYSTEM_SHARE = 0.15
TWO_TURN_SHARE = 0.15
MAX_PROMPT = 400
MAX_ANSWER = 150

SYSTEM_PROMPTS = (
    "あなたは日本語で丁寧に答えるアシスタントです。",
    "あなたは誠実で優秀な日本人のアシスタントです。質問には簡潔に答えてください。",
    "以下の指示に従って、正確に答えてください。",
)

KATAKANA = re.compile(r"[ァ-ヶー]{2,10}")  # ァ..ヶ have hiragana twins (ぁ..ゖ); ヷ..ヺ do not
HIRAGANA = re.compile(r"[ぁ-ゖ]{3,8}")
KANJI_WORD = re.compile(
    r"(?<![\u4e00-\u9fff々])[\u4e00-\u9fff々]{2,4}(?![\u4e00-\u9fff々])"
)  # whole runs only
OPEN, CLOSE = "「『（(［【", "」』）)］】"
KANJI_NUMBERS = "〇一二三四五六七八九"


@dataclass
class Work:
    """One Aozora work cut into what the tasks need."""

    title: str
    author: str
    source: str
    opening: str  # the first sentences, up to ~100 characters
    passages: list[list[str]] = field(default_factory=list)  # paragraphs as lists of sentences
    sentences: list[str] = field(default_factory=list)
    katakana: list[str] = field(default_factory=list)
    hiragana: list[str] = field(default_factory=list)
    kanji: list[str] = field(default_factory=list)


def split_sentences(paragraph: str) -> list[str]:
    """Sentences ending in 。！？ outside brackets, so 「……。」と言った。 stays one sentence."""
    sentences, depth, start = [], 0, 0
    for i, char in enumerate(paragraph):
        if char in OPEN:
            depth += 1
        elif char in CLOSE:
            depth = max(0, depth - 1)
        elif char in "。！？" and depth == 0:
            sentences.append(paragraph[start : i + 1])
            start = i + 1
    return sentences  # an unterminated tail is dropped: it is not a whole sentence


def load_works(path: Path = AOZORA) -> list[Work]:
    works = []
    for record in read_records([path]):
        paragraphs = [p.strip().lstrip("\u3000") for p in record["text"].split("\n")]
        paragraphs = [p for p in paragraphs if p and not p.isspace()]
        first = next((p for p in paragraphs if len(p) >= 20), "")
        opening = ""
        for sentence in split_sentences(first):
            if len(opening) + len(sentence) > 100:
                break
            opening += sentence
        opening = opening or first[:80]  # a first sentence over 100 characters, or verse without 。
        work = Work(record["title"], record.get("author", ""), record["source"], opening)
        for paragraph in paragraphs:
            sentences = split_sentences(paragraph)
            if len(sentences) >= 2 and len(paragraph) <= 300 and all(5 <= len(s) <= 120 for s in sentences):
                work.passages.append(sentences)
            work.sentences.extend(s for s in sentences if 5 <= len(s) <= 120)
            work.katakana.extend(w for w in KATAKANA.findall(paragraph) if not w.startswith("ー"))
            work.hiragana.extend(HIRAGANA.findall(paragraph))
            work.kanji.extend(KANJI_WORD.findall(paragraph))
        if work.title and work.author and work.opening and work.passages:
            works.append(work)
    return works


def kata_to_hira(word: str) -> str:
    return "".join(chr(ord(c) - 0x60) if "ァ" <= c <= "ヶ" else c for c in word)


def hira_to_kata(word: str) -> str:
    return "".join(chr(ord(c) + 0x60) if "ぁ" <= c <= "ゖ" else c for c in word)


# Each task returns (user message, assistant message), or None when the work offers nothing suitable.


def first_sentence(rng: random.Random, work: Work) -> tuple[str, str] | None:
    sentences = rng.choice(work.passages)
    ask = rng.choice(
        (
            "次の文章の最初の文を、そのまま書き出してください。",
            "以下の文章から一文目だけを抜き出してください。",
            "この文章の最初の一文は何ですか。",
            "次の文章の書き出しの一文を答えてください。",
        )
    )
    return f"{ask}\n\n{''.join(sentences)}", sentences[0]


def title_author(rng: random.Random, work: Work) -> tuple[str, str] | None:
    kind = rng.randrange(3)
    if kind == 0:
        ask = rng.choice(
            ("次の書き出しで始まる作品の題名と作者を答えてください。", "この冒頭の作品名と作者は？")
        )
        answer = f"『{work.title}』（{work.author}）です。"
    elif kind == 1:
        ask = rng.choice(("次の書き出しで始まる作品の作者は誰ですか。", "この文章を書いたのは誰ですか。"))
        answer = f"{work.author}です。"
    else:
        ask = rng.choice(("次の書き出しで始まる作品の題名を答えてください。", "この冒頭の作品は何ですか。"))
        answer = f"『{work.title}』です。"
    return f"{ask}\n\n{work.opening}", answer


def continue_sentence(rng: random.Random, work: Work) -> tuple[str, str] | None:
    candidates = [s for s in work.sentences if 20 <= len(s) <= 100 and "、" in s[6:-6]]
    if not candidates:
        return None
    sentence = rng.choice(candidates)
    commas = [i for i, c in enumerate(sentence) if c == "、" and 6 <= i < len(sentence) - 6]
    cut = min(commas, key=lambda i: abs(i - len(sentence) // 2)) + 1  # the comma nearest the middle
    ask = rng.choice(
        (
            "次の文の続きを書いてください。",
            "以下の書きかけの文を完成させてください。続きの部分だけを答えてください。",
            "この文はどう続きますか。",
        )
    )
    return f"{ask}\n\n{sentence[:cut]}", sentence[cut:]


def repeat_word(rng: random.Random, work: Work) -> tuple[str, str] | None:
    word = rng.choice(work.katakana + work.kanji)
    times = rng.randint(2, 6)
    ask = rng.choice(
        (
            f"「{word}」を{times}回繰り返して書いてください。",
            f"「{word}」という言葉を{KANJI_NUMBERS[times]}回、読点で区切って書いてください。",
            f"次の言葉を{times}回書いてください：{word}",
        )
    )
    return ask, "、".join([word] * times)


def count_chars(rng: random.Random, work: Work) -> tuple[str, str] | None:
    phrases = [
        p for s in rng.sample(work.sentences, min(5, len(work.sentences))) for p in re.split("[、。！？]", s)
    ]
    phrases = [p for p in phrases if 3 <= len(p) <= 12 and not set(p) & set(OPEN + CLOSE)]
    if not phrases:
        return None
    phrase = rng.choice(phrases)
    kind = rng.randrange(3)
    if kind == 0:
        return f"「{phrase}」は何文字ですか。", f"{len(phrase)}文字です。"
    if kind == 1:
        return f"次の語句の文字数を数えてください。\n\n{phrase}", f"{len(phrase)}文字です。"
    return f"「{phrase}」の文字数を数字だけで答えてください。", str(len(phrase))


def katakana_to_hiragana(rng: random.Random, work: Work) -> tuple[str, str] | None:
    if not work.katakana:
        return None
    word = rng.choice(work.katakana)
    ask = rng.choice(
        (
            f"「{word}」をひらがなに直してください。",
            f"次のカタカナをひらがなで書いてください：{word}",
            f"{word}をひらがな表記にすると？",
        )
    )
    return ask, kata_to_hira(word)


def hiragana_to_katakana(rng: random.Random, work: Work) -> tuple[str, str] | None:
    if not work.hiragana:
        return None
    word = rng.choice(work.hiragana)
    ask = rng.choice(
        (
            f"「{word}」をカタカナに直してください。",
            f"次のひらがなをカタカナで書いてください：{word}",
            f"{word}をカタカナ表記にすると？",
        )
    )
    return ask, hira_to_kata(word)


def find_sentences(rng: random.Random, work: Work) -> tuple[str, str] | None:
    passages = [p for p in work.passages if len(p) >= 3]
    if not passages:
        return None
    sentences = rng.choice(passages)
    words = sorted({w for s in sentences for w in KANJI_WORD.findall(s) + KATAKANA.findall(s)})
    # A word in some but not all sentences, so the answer is a real selection.
    words = [w for w in words if 0 < sum(w in s for s in sentences) < len(sentences)]
    rng.shuffle(words)
    for word in words:
        answer = "\n".join(s for s in sentences if word in s)
        if len(answer) <= MAX_ANSWER:
            ask = rng.choice(
                (
                    f"次の文章から「{word}」という言葉を含む文をすべて抜き出してください。",
                    f"以下の文章のうち、「{word}」が出てくる文を一行に一文ずつ書き出してください。",
                    f"「{word}」を含む文を次の文章から探して、そのまま書いてください。",
                )
            )
            return f"{ask}\n\n{''.join(sentences)}", answer
    return None


TASKS = {
    "first_sentence": first_sentence,
    "title_author": title_author,
    "continue_sentence": continue_sentence,
    "repeat_word": repeat_word,
    "count_chars": count_chars,
    "katakana_to_hiragana": katakana_to_hiragana,
    "hiragana_to_katakana": hiragana_to_katakana,
    "find_sentences": find_sentences,
}


def make_turn(rng: random.Random, work: Work, task: str) -> tuple[str, str] | None:
    turn = TASKS[task](rng, work)
    if turn is None or len(turn[0]) > MAX_PROMPT or len(turn[1]) > MAX_ANSWER or not turn[1].strip():
        return None
    return turn


def make_conversation(rng: random.Random, works: list[Work], task: str) -> dict:
    """One record for `task`: a work drawn until it offers the task, then maybe a system message and a 2nd turn."""
    while True:
        work = rng.choice(works)
        first = make_turn(rng, work, task)
        if first is not None:
            break
    messages = []
    if rng.random() < SYSTEM_SHARE:
        messages.append({"role": "system", "content": rng.choice(SYSTEM_PROMPTS)})
    messages += [{"role": "user", "content": first[0]}, {"role": "assistant", "content": first[1]}]
    tasks = [task]
    if rng.random() < TWO_TURN_SHARE:
        for _ in range(10):  # a second, different task on the same work
            other = rng.choice([t for t in TASKS if t != task])
            second = make_turn(rng, work, other)
            if second is not None:
                messages += [
                    {"role": "user", "content": second[0]},
                    {"role": "assistant", "content": second[1]},
                ]
                tasks.append(other)
                break
    return {
        "messages": messages,
        "task": "+".join(tasks),
        "source": work.source,
        "title": work.title,
        "author": work.author,
    }


def build(works: list[Work], count: int = CONVERSATIONS, seed: int = SEED) -> list[dict]:
    rng = random.Random(seed)
    names = list(TASKS)
    return [make_conversation(rng, works, names[i % len(names)]) for i in range(count)]


def write(path: Path, records: list[dict]) -> None:
    """JSONL compressed with zstd at a fixed level, written atomically; same records, same bytes."""
    from jalm.io import write_atomic

    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")
    write_atomic(path, zstandard.ZstdCompressor(level=19).compress(data))


def summary(records: list[dict]) -> dict[str, int]:
    counts = Counter()
    for record in records:
        for task in record["task"].split("+"):
            counts[task] += 1
    counts["conversations"] = len(records)
    counts["with system message"] = sum(r["messages"][0]["role"] == "system" for r in records)
    counts["two turns"] = sum("+" in r["task"] for r in records)
    return dict(counts)


def main(out: Path = DEFAULT_OUT) -> dict[str, int]:
    """Build the set, check it against the evaluation sets, write it to `out`; return counts per task."""
    from jalm.sft.decontaminate import build_index, decontaminate, eval_texts
    from jalm.sft.records import Conversation

    records = build(load_works())
    conversations = [Conversation(r["messages"], f"demo:{i + 1}") for i, r in enumerate(records)]
    _, report = decontaminate(conversations, build_index(eval_texts()))
    if any(report["removed"].values()):
        raise SystemExit(f"demo data overlaps the evaluation sets: {report}")
    write(Path(out), records)
    counts = summary(records)
    for name, value in counts.items():
        print(f"{name:>22}: {value}")
    print(f"{'written':>22}: {out} ({Path(out).stat().st_size:,} bytes)")
    return counts


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT)
