"""The evaluation tasks: one frozen config object per task, and the registry that names them.

A task's config holds that task's options, with the protocol as its defaults. `inputs()` lists the files
it will read (checked before the model is loaded, so a typo fails in a second, not after loading 7 GB);
`run(lm, limit=..., batch_size=..., progress=...)` scores a loaded model and returns (metrics, per-example
records). `evaluate()` takes task names (default configs) or config objects, e.g.

    evaluate(model_dir, [PplConfig(data="dev.jsonl", stride=384), "jsquad", JsquadChatConfig()])

| name | config | protocol |
|---|---|---|
| ppl | PplConfig | perplexity and bits per character (perplexity.py) |
| jsquad | JsquadConfig | jp-stable `jsquad-1.1-0.2`, 3 shots (jsquad.py) |
| aio | AioConfig | AI王 closed-book zero-shot `{question}答えは「` (aio.py) |
| jsquad-chat | JsquadChatConfig | JSQuAD zero-shot as one user message in the chat template (chat.py) |
| aio-chat | AioChatConfig | AI王 zero-shot as one user message in the chat template (chat.py) |
| jcommonsenseqa | JcqaConfig | jp-stable `jcommonsenseqa-1.1-0.2`, 3 shots, log-likelihood of each choice (jglue.py) |
| jnli | JnliConfig | jp-stable `jnli-1.1-0.2`, 3 shots, log-likelihood of each label (jglue.py) |
| jsts | JstsConfig | llm-jp-eval's JSTS instruction, 4 shots, greedy score, Pearson / Spearman (jglue.py) |

MARC-ja (in jp-stable's published rows) is not here: Amazon withdrew its source, the Multilingual Amazon
Reviews Corpus, from distribution.

Importing this module imports neither torch nor transformers; `run` does, when called.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from jalm.errors import JalmError

DEFAULT_TASKS = ("ppl", "jsquad", "aio")
DEFAULT_PPL_DATA = "dev/wiki_jaquad.jsonl.zst"
# The instructions of the chat tasks (see chat.py): {passage}, {question} are filled in per question.
JSQUAD_CHAT_MESSAGE = (
    "文章:{passage}\n質問:{question}\n質問の答えを文章中から一言で抜き出して答えてください。"
)
AIO_CHAT_MESSAGE = "{question}\n答えだけを一言で答えてください。"

Result = tuple[dict[str, Any], list[dict[str, Any]]]


def _given(*paths: str | Path | None) -> list[Path]:
    return [Path(p) for p in paths if p]


@dataclass(frozen=True)
class TaskConfig:
    """Base of the task configs: `name` is the task's key in --tasks and in results.json."""

    name: ClassVar[str] = ""

    def inputs(self) -> list[Path]:
        """Files the task will read that the user named (bundled defaults need no check)."""
        return []

    def run(self, lm: Any, *, limit: int | None = None, batch_size: int = 8, progress: bool = True) -> Result:
        raise NotImplementedError


@dataclass(frozen=True)
class PplConfig(TaskConfig):
    """Perplexity on JSONL text (files or directories; default the bundled dev set); window and stride in
    tokens (default: the model's context and half of it)."""

    name: ClassVar[str] = "ppl"
    data: str | Path | Sequence[str | Path] | None = None
    window: int | None = None
    stride: int | None = None

    def paths(self) -> list[Path]:
        from jalm.resources import bundled

        if not self.data:
            return [bundled(DEFAULT_PPL_DATA)]
        return [Path(p) for p in ([self.data] if isinstance(self.data, (str, Path)) else self.data)]

    def inputs(self) -> list[Path]:
        return self.paths()

    def run(self, lm: Any, *, limit: int | None = None, batch_size: int = 8, progress: bool = True) -> Result:
        from jalm.eval.perplexity import evaluate_ppl

        metrics, _ = evaluate_ppl(
            lm,
            self.paths(),
            window=self.window,
            stride=self.stride,
            limit=limit,
            batch_size=batch_size,
            progress=progress,
        )
        return metrics, []  # per-document rows are not predictions


@dataclass(frozen=True)
class JsquadConfig(TaskConfig):
    """JSQuAD as jp-stable runs it. `data`: the questions (default bundled valid v1.1); `pool`: the shot
    pool (default bundled test v1.3); `max_new_tokens=None` is the protocol (longest gold answer)."""

    name: ClassVar[str] = "jsquad"
    data: str | Path | None = None
    pool: str | Path | None = None
    shots: int = 3
    prompt_version: str = "0.2"
    max_new_tokens: int | None = None

    def inputs(self) -> list[Path]:
        return _given(self.data, self.pool)

    def run(self, lm: Any, *, limit: int | None = None, batch_size: int = 8, progress: bool = True) -> Result:
        from jalm.eval.jsquad import evaluate_jsquad

        return evaluate_jsquad(
            lm,
            data=self.data,
            pool=self.pool,
            shots=self.shots,
            prompt_version=self.prompt_version,
            limit=limit,
            batch_size=batch_size,
            max_new_tokens=self.max_new_tokens,
            progress=progress,
        )


@dataclass(frozen=True)
class AioConfig(TaskConfig):
    """AI王 closed-book zero-shot; `data`: an AI王 TSV (default bundled aio_02_dev)."""

    name: ClassVar[str] = "aio"
    data: str | Path | None = None

    def inputs(self) -> list[Path]:
        return _given(self.data)

    def run(self, lm: Any, *, limit: int | None = None, batch_size: int = 8, progress: bool = True) -> Result:
        from jalm.eval.aio import evaluate_aio

        return evaluate_aio(lm, data=self.data, limit=limit, batch_size=batch_size, progress=progress)


@dataclass(frozen=True)
class JsquadChatConfig(TaskConfig):
    """JSQuAD zero-shot as an instruction in the model's chat template; `message` is the user message
    (a format string with {passage} and {question}); `max_new_tokens=None`: the longest gold answer."""

    name: ClassVar[str] = "jsquad-chat"
    data: str | Path | None = None
    message: str = JSQUAD_CHAT_MESSAGE
    max_new_tokens: int | None = None

    def inputs(self) -> list[Path]:
        return _given(self.data)

    def run(self, lm: Any, *, limit: int | None = None, batch_size: int = 8, progress: bool = True) -> Result:
        from jalm.eval.chat import evaluate_jsquad_chat

        return evaluate_jsquad_chat(lm, self, limit=limit, batch_size=batch_size, progress=progress)


@dataclass(frozen=True)
class AioChatConfig(TaskConfig):
    """AI王 zero-shot as an instruction in the model's chat template; `message` has {question}."""

    name: ClassVar[str] = "aio-chat"
    data: str | Path | None = None
    message: str = AIO_CHAT_MESSAGE
    max_new_tokens: int = 64

    def inputs(self) -> list[Path]:
        return _given(self.data)

    def run(self, lm: Any, *, limit: int | None = None, batch_size: int = 8, progress: bool = True) -> Result:
        from jalm.eval.chat import evaluate_aio_chat

        return evaluate_aio_chat(lm, self, limit=limit, batch_size=batch_size, progress=progress)


@dataclass(frozen=True)
class JcqaConfig(TaskConfig):
    """JCommonsenseQA as jp-stable ran it for the published rows: `version` "0.2" (default) or "0.1";
    `data`: questions (default bundled valid v1.3); `pool`: shot pool (default bundled train v1.3);
    `shared_context=False` scores each choice as its own sequence (same numbers, slower)."""

    name: ClassVar[str] = "jcommonsenseqa"
    data: str | Path | None = None
    pool: str | Path | None = None
    shots: int = 3
    version: str = "0.2"
    shared_context: bool = True

    def inputs(self) -> list[Path]:
        return _given(self.data, self.pool)

    def run(self, lm: Any, *, limit: int | None = None, batch_size: int = 8, progress: bool = True) -> Result:
        from jalm.eval.jglue import evaluate_choice_task

        return evaluate_choice_task(
            lm,
            self.name,
            data=self.data,
            pool=self.pool,
            shots=self.shots,
            version=self.version,
            limit=limit,
            batch_size=batch_size,
            shared_context=self.shared_context,
            progress=progress,
        )


@dataclass(frozen=True)
class JnliConfig(JcqaConfig):
    """JNLI as jp-stable ran it: `version` "1.1" (default: the published rows, English labels, random
    shots) or "1.3" (Japanese labels, stratified shots). The default `pool` is the bundled v1.3 test set
    because the train file jp-stable used is not bundled: pass the real train-v1.3.json as `pool`."""

    name: ClassVar[str] = "jnli"
    version: str = "1.1"


@dataclass(frozen=True)
class JstsConfig(TaskConfig):
    """JSTS with llm-jp-eval's instruction, `shots` drawn from `pool` (default bundled test v1.3),
    greedy decoding of the score; Pearson and Spearman ×100."""

    name: ClassVar[str] = "jsts"
    data: str | Path | None = None
    pool: str | Path | None = None
    shots: int = 4
    max_new_tokens: int = 8

    def inputs(self) -> list[Path]:
        return _given(self.data, self.pool)

    def run(self, lm: Any, *, limit: int | None = None, batch_size: int = 8, progress: bool = True) -> Result:
        from jalm.eval.jglue import evaluate_jsts

        return evaluate_jsts(
            lm,
            data=self.data,
            pool=self.pool,
            shots=self.shots,
            limit=limit,
            batch_size=batch_size,
            max_new_tokens=self.max_new_tokens,
            progress=progress,
        )


REGISTRY: dict[str, type[TaskConfig]] = {
    config.name: config
    for config in (
        PplConfig,
        JsquadConfig,
        AioConfig,
        JsquadChatConfig,
        AioChatConfig,
        JcqaConfig,
        JnliConfig,
        JstsConfig,
    )
}
TASKS = tuple(REGISTRY)


def parse_tasks(tasks: str | Sequence[str]) -> list[str]:
    """'ppl,jsquad' or ['ppl', 'jsquad'] → a checked, de-duplicated list in the order given."""
    names = tasks.split(",") if isinstance(tasks, str) else list(tasks)
    names = [n.strip() for n in names if n.strip()]
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise JalmError(f"unknown task {', '.join(unknown)}; choose from {', '.join(TASKS)}")
    if not names:
        raise JalmError(f"no task given; choose from {', '.join(TASKS)}")
    return list(dict.fromkeys(names))


def resolve_tasks(tasks: str | Sequence[str | TaskConfig]) -> list[TaskConfig]:
    """Names and configs → one config per task, in the order given (a name means the default config)."""
    items: list[str | TaskConfig] = []
    for item in tasks.split(",") if isinstance(tasks, str) else tasks:
        if isinstance(item, str):
            if item.strip():
                items.append(item.strip())
        elif isinstance(item, TaskConfig):
            items.append(item)
        else:
            raise JalmError(f"not a task name or task config: {item!r}")
    names = parse_tasks([item if isinstance(item, str) else item.name for item in items])
    configs: dict[str, TaskConfig] = {}
    for item in items:
        config = REGISTRY[item]() if isinstance(item, str) else item
        if configs.setdefault(config.name, config) != config:
            raise JalmError(f"task {config.name} given twice with different settings")
    return [configs[name] for name in names]
