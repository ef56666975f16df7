"""The card's sections, built from `ModelFacts`: what the model is, its tokenizer, how it was trained and on
what, how it scores, how to use it. Whatever is unknown is said to be unknown, with the file that would
have told."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jalm.formatting import format_params
from jalm.serve.card.blocks import (
    PROMPT,
    UNKNOWN,
    Bullets,
    Code,
    Image,
    Para,
    Section,
    Table,
    fmt_int,
    fmt_num,
    fmt_params,
)
from jalm.serve.facts import ModelFacts

# The seed's published numbers (LINE's model card), shown for scale only.
LINE_REFERENCE = [
    ("line-corporation/japanese-large-lm-1.7b", "1.7B", "8.57", "32.2", "57.50"),
    ("line-corporation/japanese-large-lm-3.6b", "3.6B", "7.50", "48.5", "63.85"),
]


def usage_snippet(model_ref: str, prompt: str = PROMPT) -> str:
    """LINE's model-card snippet with only the path (and the CPU device) changed."""
    ref = json.dumps(model_ref, ensure_ascii=False)
    return (
        "from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline, set_seed\n\n"
        f"model = AutoModelForCausalLM.from_pretrained({ref})\n"
        f"tokenizer = AutoTokenizer.from_pretrained({ref}, use_fast=False)\n"
        'generator = pipeline("text-generation", model=model, tokenizer=tokenizer, device=-1)  # device=0 on a GPU\n'
        "set_seed(101)\n\n"
        "text = generator(\n"
        f"    {json.dumps(prompt, ensure_ascii=False)},\n"
        "    max_length=30,\n"
        "    do_sample=True,\n"
        "    pad_token_id=tokenizer.pad_token_id,\n"
        "    num_return_sequences=5,\n"
        ")\n\n"
        "for t in text:\n"
        "    print(t)\n"
    )


def _cfg(config: dict, *names: str) -> Any:
    for name in names:
        if config.get(name) is not None:
            return config[name]
    return None


def _architecture(facts: ModelFacts) -> Section:
    c = facts.config
    model_type = c.get("model_type", UNKNOWN)
    hidden = _cfg(c, "hidden_size", "n_embd", "d_model")
    ffn = _cfg(c, "intermediate_size", "n_inner", "ffn_dim") or (
        4 * hidden if model_type == "gpt2" and hidden else None
    )
    from jalm.model.families import FAMILIES

    family = FAMILIES.get(model_type)  # the card describes only what the family says, exactly
    positions, residual = family.card(c) if family is not None else (UNKNOWN, UNKNOWN)
    rows = [
        ["class", ", ".join(c.get("architectures") or [UNKNOWN])],
        ["model type", model_type],
        ["parameters", fmt_params(facts.params) + (f", {facts.params_source}" if facts.params else "")],
        ["layers", fmt_int(_cfg(c, "num_hidden_layers", "n_layer"))],
        ["hidden size", fmt_int(hidden)],
        ["attention heads", fmt_int(_cfg(c, "num_attention_heads", "n_head"))],
        ["feed-forward size", fmt_int(ffn)],
        ["context (positions)", fmt_int(facts.context)],
        ["position encoding", positions],
        ["residual", residual],
        ["activation", str(_cfg(c, "hidden_act", "activation_function") or UNKNOWN)],
        [
            "layer-norm epsilon",
            str(_cfg(c, "layer_norm_eps", "layer_norm_epsilon", "rms_norm_eps") or UNKNOWN),
        ],
        ["tied input/output embeddings", str(c.get("tie_word_embeddings", True)).lower()],
        ["vocabulary", fmt_int(c.get("vocab_size"))],
        [
            "bos / eos / pad ids",
            " / ".join(
                str(c.get(k, "none")).replace("None", "none")
                for k in ("bos_token_id", "eos_token_id", "pad_token_id")
            ),
        ],
        ["weights dtype", str(_cfg(c, "torch_dtype", "dtype") or UNKNOWN)],
    ]
    return Section("Model", [Table(["", ""], rows)], "model")


def _tokenizer(facts: ModelFacts) -> Section:
    t = facts.tokenizer
    if not t.get("files"):
        return Section("Tokenizer", [Para(f"Unknown: {facts.path} has no tokenizer files.")], "tokenizer")
    algorithm = t.get("algorithm") or UNKNOWN
    kind = f"{'SentencePiece ' if t.get('sentencepiece') else ''}{algorithm}".strip()
    if t.get("byte_fallback") is not None:
        kind += ", byte fallback" if t["byte_fallback"] else ", no byte fallback"
    special = ", ".join(f"{i} {s}" for i, s in (t.get("special") or [])) or UNKNOWN
    rows = [
        ["type", kind],
        ["vocabulary", fmt_int(t.get("vocab_size"))],
        ["special tokens", special],
        ["files", ", ".join(t["files"])],
        ["tokenizer_class", str(t.get("class") or UNKNOWN)],
    ]
    note = (
        "Prompts are encoded without special tokens (no <s>, never a trailing </s>), as the text-generation "
        "pipeline does. No pre-tokenization: raw text goes straight into the tokenizer."
    )
    if "tokenizer.json" in t["files"] and "spiece.model" in t["files"]:
        note += (
            " tokenizer.json is an exact conversion of spiece.model, so slow and fast tokenizers, under "
            "transformers 4 and 5, give SentencePiece's ids."
        )
    return Section("Tokenizer", [Table(["", ""], rows), Para(note)], "tokenizer")


def _training(facts: ModelFacts, loss_src: str | None) -> Section:
    blocks: list[Any] = []
    p = facts.provenance
    if p:
        cfg = p.get("train_config") if isinstance(p.get("train_config"), dict) else {}
        batch = [cfg.get(k) for k in ("micro_batch_size", "grad_accum", "seq_len")]
        rows = [
            ["preset / layout", f"{p.get('preset', UNKNOWN)} / {p.get('layout', UNKNOWN)}"],
            ["steps", fmt_int(p.get("steps"))],
            ["tokens seen", fmt_int(p.get("tokens"))],
            ["batch", f"{batch[0]} × {batch[1]} sequences of {batch[2]} tokens" if all(batch) else UNKNOWN],
            [
                "optimizer",
                f"AdamW β1 {cfg.get('beta1', '?')}, β2 {cfg.get('beta2', '?')}, weight decay "
                f"{cfg.get('weight_decay', '?')}, gradient clip {cfg.get('grad_clip', '?')}"
                if cfg
                else UNKNOWN,
            ],
            [
                "learning rate",
                f"peak {cfg.get('lr', '?')}, {cfg.get('warmup_steps', '?')} warmup steps, "
                f"{cfg.get('schedule', '?')} decay"
                if cfg
                else UNKNOWN,
            ],
            ["init", str(cfg.get("init", UNKNOWN))],
            ["checkpoint", str(p.get("checkpoint", UNKNOWN))],
        ]
        blocks.append(Table(["", ""], rows))
    else:
        blocks.append(
            Para(
                f"How this model was trained is unknown: {facts.path} has no jalm.json (written by "
                "`jalm export`)."
            )
        )
    if facts.train_curve:
        last_step, last_loss = facts.train_curve[-1]
        text = f"Training loss went from {facts.train_curve[0][1]:.3f} (step {facts.train_curve[0][0]}) to {last_loss:.3f} (step {last_step})"
        if facts.val_curve:
            text += f"; validation loss {facts.val_curve[-1][1]:.3f} at step {facts.val_curve[-1][0]}"
        blocks.append(Para(text + " (cross-entropy in nats per token)."))
    if loss_src:
        blocks.append(Image(loss_src, "training and validation loss by step"))
    else:
        blocks.append(
            Para("Loss curve: unknown (no training/metrics.jsonl or training/loss.png beside the model).")
        )
    return Section("Training", blocks, "training")


def _data(facts: ModelFacts) -> Section:
    blocks: list[Any] = []
    stats = facts.clean_stats
    if stats:
        rejected = stats.get("rejected") if isinstance(stats.get("rejected"), dict) else {}
        total_rejected = sum(v for v in rejected.values() if isinstance(v, int))
        blocks.append(
            Para(
                f"Cleaning (`jalm clean`): {fmt_int(stats.get('input'))} input documents, {fmt_int(stats.get('kept'))} kept, "
                f"{fmt_int(total_rejected)} rejected, {fmt_int(stats.get('malformed'))} malformed."
            )
        )
        if rejected:
            rows = [
                [str(rule), fmt_int(n)] for rule, n in sorted(rejected.items(), key=lambda kv: -(kv[1] or 0))
            ]
            blocks.append(Table(["rejected by rule", "documents"], rows))
        per_source = sources(stats)
        if per_source:
            rows = [
                [
                    name,
                    fmt_int(f.get("input")),
                    fmt_int(f.get("kept")),
                    fmt_int(f.get("rejected")),
                    fmt_int(f.get("malformed")),
                ]
                for name, f in per_source
            ]
            blocks.append(Table(["source", "input", "kept", "rejected", "malformed"], rows))
        dedup = stats.get("dedup")
        if isinstance(dedup, dict) and dedup:
            blocks.append(
                Para(
                    "Deduplication: "
                    + ", ".join(f"{k.replace('_', ' ')} {fmt_int(v)}" for k, v in dedup.items())
                    + "."
                )
            )
    else:
        blocks.append(Para("Cleaning statistics: unknown (no training/clean_stats.json beside the model)."))
    meta = facts.packed
    if meta:
        blocks.append(
            Para(
                f"Packed for training: {fmt_int(meta.get('train_documents'))} documents, {fmt_int(meta.get('train_tokens'))} "
                f"tokens ({fmt_int(meta.get('train_chars'))} characters); held out for validation: "
                f"{fmt_int(meta.get('val_documents'))} documents, {fmt_int(meta.get('val_tokens'))} tokens."
            )
        )
    elif facts.provenance and facts.provenance.get("data"):
        blocks.append(
            Para(f"Training data directory: {facts.provenance['data']} (its meta.json is not available).")
        )
    return Section("Training data", blocks, "data")


def _evaluation(facts: ModelFacts) -> Section:
    r = facts.results
    if not r and facts.results_path is not None:
        return Section(
            "Evaluation",
            [Para(f"Unknown: {facts.results_path} is not a readable jalm results file.")],
            "evaluation",
        )
    if not r:
        return Section(
            "Evaluation",
            [
                Para(
                    "Unknown: no results.json (run `jalm eval --model DIR --tasks ppl,jsquad,aio --out DIR/results.json`, "
                    "or pass --results FILE)."
                )
            ],
            "evaluation",
        )
    tasks = r["tasks"]
    ppl, jsq, aio = (tasks.get(k) if isinstance(tasks.get(k), dict) else {} for k in ("ppl", "jsquad", "aio"))
    row = [
        str(r.get("model_name") or facts.name),
        format_params(r.get("params") or facts.params),
        fmt_num(ppl.get("ppl"), 2),
        fmt_num(ppl.get("bits_per_char"), 3),
        fmt_num(aio.get("exact_match"), 1),
        fmt_num(jsq.get("exact_match"), 2),
        fmt_num(jsq.get("f1"), 2),
    ]
    blocks: list[Any] = [
        Table(["model", "params", "PPL", "bits/char", "AI王 EM", "JSQuAD EM", "JSQuAD F1"], [row])
    ]
    notes = []
    if ppl:
        notes.append(
            f"PPL: per token on {Path(str(ppl.get('data', '?'))).name}, {fmt_int(ppl.get('documents'))} documents, "
            f"{fmt_int(ppl.get('tokens'))} tokens, {fmt_int(ppl.get('chars'))} characters. Per-token PPL depends "
            "on the tokenizer; bits per character does not."
        )
    if jsq:
        notes.append(
            f"JSQuAD: {jsq.get('shots', '?')}-shot exact match and F1 on {fmt_int(jsq.get('n'))} questions."
        )
    if aio:
        notes.append(f"AI王: zero-shot exact match on {fmt_int(aio.get('n'))} questions.")
    jglue = [(k, label, key) for k, label, key in _JGLUE if isinstance(tasks.get(k), dict)]
    if jglue:
        blocks.append(
            Table(
                ["task", "protocol", "shots", "score", "n"],
                [
                    [
                        label,
                        str(tasks[k].get("task")),
                        str(tasks[k].get("shots")),
                        fmt_num(tasks[k].get(key), 1),
                        fmt_int(tasks[k].get("n")),
                    ]
                    for k, label, key in jglue
                ],
            )
        )
        notes.append(
            "JCommonsenseQA and JNLI: accuracy (%) under Stability AI's jp-stable harness protocol named in the "
            "table (the protocol of LINE's published JP harness rows); JSTS: Pearson r ×100 under llm-jp-eval's "
            "instruction. MARC-ja is not evaluated: Amazon withdrew its source."
        )
    others = sorted(set(tasks) - {"ppl", "jsquad", "aio", *(k for k, _, _ in _JGLUE)})
    if others:
        notes.append("Other tasks in the results file: " + ", ".join(others) + ".")
    notes.append(f"From {facts.results_path}.")
    blocks.append(Bullets(notes))
    blocks.append(
        Para(
            "For scale, the published LINE models (their C4 PPL uses mC4-ja validation and their own "
            "tokenizer, so it is not comparable with the PPL above):"
        )
    )
    blocks.append(
        Table(["model", "params", "C4 PPL", "AI王", "JSQuAD"], [list(row) for row in LINE_REFERENCE])
    )
    return Section("Evaluation", blocks, "evaluation")


_JGLUE = (
    ("jcommonsenseqa", "JCommonsenseQA", "acc"),
    ("jnli", "JNLI", "acc"),
    ("jsts", "JSTS (Pearson)", "pearson"),
)


def _usage(facts: ModelFacts, model_ref: str) -> Section:
    return Section(
        "How to use",
        [
            Para("With transformers (LINE's snippet; only the path differs):"),
            Code("python", usage_snippet(model_ref)),
            Para("From the command line, and as a local web page with an OpenAI-compatible API:"),
            Code(
                "bash",
                f'jalm generate --model {model_ref} --prompt "{PROMPT}" --max-length 30 '
                f"--num-return-sequences 5 --seed 101\njalm serve --model {model_ref}",
            ),
        ],
        "usage",
    )


def _samples(samples: list[str] | None) -> Section:
    if samples is None:
        return Section("Sample outputs", [Para("Not generated.")], "samples")
    return Section(
        "Sample outputs",
        [
            Para(
                f"Five continuations of 「{PROMPT}」 (max_length=30, do_sample=True, temperature 0.7, seed 101 — the "
                "snippet's arguments):"
            ),
            Code("text", "\n".join(s.replace("\n", "\\n") for s in samples)),
        ],
        "samples",
    )


def build_card(
    facts: ModelFacts,
    model_ref: str | None = None,
    loss_src: str | None = None,
    samples: list[str] | None = None,
) -> list[Section]:
    """The card's sections. `loss_src` is where the page/README finds the loss plot (None: no plot)."""
    model_ref = model_ref or str(facts.path)
    if facts.provenance:
        what = (
            f"trained with jalm, following LINE's japanese-large-lm recipe ({facts.provenance.get('preset', '?')} "
            f"preset, {fmt_int(facts.provenance.get('tokens'))} training tokens)"
        )
    else:
        what = "of unknown training provenance (no jalm.json)"
    intro = [
        Para(
            f"A Japanese causal language model ({', '.join(facts.config.get('architectures') or ['?'])}, "
            f"{fmt_params(facts.params)} parameters) {what}."
        )
    ]
    if facts.problems:
        intro.append(Bullets(facts.problems))
    return [
        Section(facts.name, intro, "top"),
        _usage(facts, model_ref),
        _architecture(facts),
        _tokenizer(facts),
        _training(facts, loss_src),
        _data(facts),
        _evaluation(facts),
        _samples(samples),
        Section(
            "Limitations",
            [
                Para(
                    "A language model continues text; it does not check facts. Small models trained briefly write "
                    "fluent-looking but often wrong or incoherent Japanese. Outputs may reproduce biases of the web "
                    "and literary text it was trained on."
                )
            ],
            "limitations",
        ),
    ]


def sources(stats: dict) -> list[tuple[str, dict]]:
    """Per-source counts from the clean stats: "shards" ({name, paths}) or "files" ({path}), whichever is there."""
    items = stats.get("shards") or stats.get("files") or []
    out = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        paths = (
            item.get("paths")
            if isinstance(item.get("paths"), list)
            else [item["path"]]
            if item.get("path")
            else []
        )
        out.append((", ".join(Path(str(p)).name for p in paths) or str(item.get("name", "?")), item))
    return out
