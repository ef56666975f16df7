// The playground: sends the form to the server's OpenAI-compatible API with stream: true and appends each
// server-sent event's text to its sequence's box as it arrives. Text is set with textContent, never as HTML.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const config = JSON.parse(document.getElementById("playground").dataset.config);
  const form = $("form");
  const status = $("status");
  const outputs = $("outputs");
  let controller = null;

  // In chat mode, show what the server says about the prompt (a model without a chat template gets LINE's
  // sft format and may not stop): the page knows it from the start, and a chat stream repeats it.
  function showNotice(text) {
    const notice = $("chat-notice");
    if (text) notice.textContent = text;
    notice.hidden = $("mode").value !== "chat" || !notice.textContent;
  }

  function setStatus(text, state) {
    status.textContent = text;
    status.dataset.state = state;
  }

  function numberOrNull(id, parse) {
    const raw = $(id).value.trim();
    if (raw === "") return null;
    const value = parse(raw);
    return Number.isFinite(value) ? value : null;
  }

  function request() {
    const body = {
      model: config.model,
      stream: true,
      max_tokens: numberOrNull("max_tokens", parseInt),
      temperature: numberOrNull("temperature", parseFloat),
      top_p: numberOrNull("top_p", parseFloat),
      top_k: numberOrNull("top_k", parseInt),
      repetition_penalty: numberOrNull("repetition_penalty", parseFloat),
      n: numberOrNull("n", parseInt) || 1,
      seed: numberOrNull("seed", parseInt),
    };
    for (const key of Object.keys(body)) if (body[key] === null) delete body[key];
    const prompt = $("prompt").value;
    if ($("mode").value === "chat") {
      return { url: "/v1/chat/completions", body: { ...body, messages: [{ role: "user", content: prompt }] }, chat: true };
    }
    return { url: "/v1/completions", body: { ...body, prompt: prompt }, chat: false, prompt: prompt };
  }

  function makeBoxes(n, prefix) {
    outputs.replaceChildren();
    const boxes = [];
    for (let i = 0; i < n; i++) {
      const box = document.createElement("div");
      box.className = "sequence";
      const label = document.createElement("div");
      label.className = "label";
      label.textContent = n > 1 ? `#${i + 1}` : "";
      const pre = document.createElement("pre");
      pre.className = "output";
      pre.dataset.index = String(i);
      if (prefix) {
        const p = document.createElement("span");
        p.className = "prompt";
        p.textContent = prefix;
        pre.appendChild(p);
      }
      const text = document.createElement("span");
      text.className = "generated";
      pre.appendChild(text);
      box.append(label, pre);
      outputs.appendChild(box);
      boxes.push(text);
    }
    return boxes;
  }

  async function generate(event) {
    event.preventDefault();
    const req = request();
    const boxes = makeBoxes(req.body.n, req.chat ? null : req.prompt);
    const reasons = [];
    let chunks = 0;
    const started = performance.now();
    controller = new AbortController();
    $("generate").disabled = true;
    $("stop").disabled = false;
    setStatus("generating…", "running");
    try {
      const response = await fetch(req.url, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(req.body),
        signal: controller.signal,
      });
      if (!response.ok) {
        const error = await response.json().catch(() => ({ error: { message: response.statusText } }));
        throw new Error(error.error ? error.error.message : response.statusText);
      }
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      let done = false;
      while (!done) {
        const part = await reader.read();
        if (part.done) break;
        buffer += decoder.decode(part.value, { stream: true });
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const event = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          for (const line of event.split("\n")) {
            if (!line.startsWith("data: ")) continue;
            const data = line.slice(6);
            if (data === "[DONE]") { done = true; break; }
            const message = JSON.parse(data);
            if (message.error) throw new Error(message.error.message);
            if (message.jalm_notice) showNotice(message.jalm_notice);
            for (const choice of message.choices || []) {
              const text = req.chat ? (choice.delta && choice.delta.content) || "" : choice.text || "";
              if (text && boxes[choice.index]) {
                boxes[choice.index].textContent += text;
                chunks++;
              }
              if (choice.finish_reason) reasons[choice.index] = choice.finish_reason;
            }
          }
        }
      }
      const seconds = (performance.now() - started) / 1000;
      setStatus(`done: ${chunks} chunks in ${seconds.toFixed(1)} s · finished by ${[...new Set(reasons)].join(", ") || "?"}`, "done");
    } catch (error) {
      if (error.name === "AbortError") setStatus("stopped", "done");
      else setStatus(`error: ${error.message}`, "error");
    } finally {
      $("generate").disabled = false;
      $("stop").disabled = true;
      controller = null;
    }
  }

  async function loadSamples() {
    const target = $("sample-outputs");
    if (!target) return;
    try {
      const response = await fetch("/api/samples");
      const data = await response.json();
      if (!response.ok) throw new Error(data.error ? data.error.message : response.statusText);
      // One line per sample, newlines shown as \n (as the README shows them).
      target.textContent = data.samples.map((s, i) => `${i + 1}. ${s.replace(/\n/g, "\\n")}`).join("\n");
    } catch (error) {
      target.textContent = `could not generate samples: ${error.message}`;
    }
  }

  form.addEventListener("submit", generate);
  $("mode").addEventListener("change", () => showNotice(null));
  showNotice(null);
  $("stop").addEventListener("click", () => controller && controller.abort());
  loadSamples();
})();
