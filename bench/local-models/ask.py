"""Asks both local models the same five companion prompts (the default persona
as the system prompt) and prints each reply with its time and token count.
Run by bench/local-models/compare.sh, which serves Gemma 3 270M on 18081 and
SmolLM2 135M Instruct on 18082 with scripts/local-model.sh."""
import json, urllib.request, sys, time
SYS = "You are a sweet AI Girlfriend. You are warm, caring and playful, you remember what the user tells you in this conversation, and you answer in a few friendly sentences."
PROMPTS = ["Hi! I had a long day at work. Can you cheer me up?",
           "What should we do this weekend?",
           "I'm nervous about my exam tomorrow.",
           "Tell me something sweet.",
           "My name is Sam. What's my name?"]
def ask(port, model, prompt, extra):
    body = {"model": "local-model", "messages": [{"role":"system","content":SYS},{"role":"user","content":prompt}], "max_tokens": 96, "temperature": 0.7, **extra}
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", json.dumps(body).encode(), {"Content-Type":"application/json"})
    t=time.time(); r = json.load(urllib.request.urlopen(req)); dt=time.time()-t
    return r["choices"][0]["message"]["content"].strip(), dt, r.get("usage",{}).get("completion_tokens")
# Each with the settings scripts/local-model.sh gives it (local_model_env).
gextra = {"frequency_penalty":0.8, "presence_penalty":0.6, "stop":["<end_of_turn>","<start_of_turn>","user\n","model\n"]}
sextra = {"stop":["<|im_end|>","<|im_start|>"]}
for p in PROMPTS:
    for port, m, ex in ((18081,"gemma3",gextra),(18082,"smollm2",sextra)):
        txt, dt, n = ask(port, m, p, ex)
        print(f"[{m}] {dt:.2f}s {n}tok Q: {p}\n    A: {txt!r}\n")
