"""Generation: UTF-8-safe streaming, KV cache == no cache, seeds, the sliding window, stop strings, CLI end to end.

The model is a tiny random-initialised GPT whose weights are scaled up so its choices depend on the context
(a fresh GPT-2 init is nearly uniform and would make "same tokens" tests weak).
"""
import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings, strategies as st

from bpe import Tokenizer
from tinygpt.errors import TinyGPTError
from tinygpt.generation import (SEPARATOR, Utf8Stream, context_start, encode_prompt, generate,
                              run_starts_documents)

TEXT = ("the cat sat on the mat. 你好，世界！水浒传是一部小说。 the dog ate the bone. "
        "émigré café naïve — ok. ") * 8
BLOCK = 16


# --- Utf8Stream (no model needed) --------------------------------------------------------------------------------
def test_utf8_stream_holds_back_a_split_character():
    data = "你好".encode()  # e4 bd a0 e5 a5 bd
    stream = Utf8Stream()
    assert stream.feed(data[:1]) == ""
    assert stream.feed(data[1:4]) == "你"
    assert stream.feed(data[4:]) == "好"
    assert stream.flush() == ""


def test_utf8_stream_flush_replaces_an_unfinished_character():
    stream = Utf8Stream()
    assert stream.feed(b"ok\xe4\xbd") == "ok"
    assert stream.flush() == "\ufffd"
    assert stream.feed(b"x") == "x"  # the stream starts afresh after a flush


def test_utf8_stream_replaces_bytes_that_can_never_be_valid_at_once():
    assert Utf8Stream().feed(b"a\xffb") == "a\ufffdb"


@given(st.text(max_size=60), st.data())
@settings(max_examples=200)
def test_utf8_stream_any_split_gives_the_same_text(text, data):
    raw = text.encode("utf-8")
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=12)))
    stream, out = Utf8Stream(), []
    for a, b in zip([0, *cuts], [*cuts, len(raw)]):
        piece = stream.feed(raw[a:b])
        assert "\ufffd" not in piece
        out.append(piece)
    out.append(stream.flush())
    assert "".join(out) == text


@given(st.text(alphabet="ab\n", max_size=40), st.lists(st.text(alphabet="ab\n", min_size=1, max_size=4),
                                                      min_size=1, max_size=3), st.data())
@settings(max_examples=300)
def test_stop_strings_cut_at_the_first_occurrence_however_the_text_arrives(text, stops, data):
    from tinygpt.generation import _StopMatcher
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=10)))
    matcher, out = _StopMatcher(tuple(stops)), ""
    for a, b in zip([0, *cuts], [*cuts, len(text)]):
        out += matcher.push(text[a:b])
        if matcher.stopped:
            break
    if not matcher.stopped:
        out += matcher.pending
    # reference: read the text one character at a time and stop as soon as a stop string ends there
    expected, stopped = text, False
    for end in range(1, len(text) + 1):
        starts = [end - len(s) for s in stops if text[:end].endswith(s)]
        if starts:
            expected, stopped = text[:min(starts)], True
            break
    assert (out, matcher.stopped) == (expected, stopped)


def test_context_start_shifts_by_steps():
    assert [context_start(n, 8, 2) for n in (1, 8, 9, 10, 11, 12)] == [0, 0, 2, 2, 4, 4]
    assert [context_start(n, 8, 1) for n in (8, 9, 10)] == [0, 1, 2]  # nanoGPT's crop to the last block_size
    for n in range(1, 60):  # the window always fits and never shrinks below block_size - shift + 1
        assert 8 - 3 + 1 <= n - context_start(n, 8, 3) <= 8 or n < 8


# --- a tiny model and tokenizer ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tokenizer():
    return Tokenizer.train(TEXT, vocab_size=300, special_tokens=[SEPARATOR])


def tiny_model(vocab_size: int, pos: str = "learned", seed: int = 0):
    from tinygrad import Tensor, nn
    from tinygpt.config import GPTConfig
    from tinygpt.model import GPT
    Tensor.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=vocab_size, n_layer=2, n_head=2, n_embd=32, block_size=BLOCK, pos=pos))
    for t in nn.state.get_parameters(model):  # an opinionated (not near-uniform) random model
        t.assign(Tensor.normal(*t.shape, std=0.6)).realize()
    return model


@pytest.fixture(scope="module")
def model(tokenizer):
    return tiny_model(tokenizer.vocab_size)


def run(model, tokenizer, prompt="the cat", **kw):
    g = generate(model, tokenizer, prompt, **kw)
    text = "".join(g)
    return text, list(g.tokens), g.stats


@pytest.mark.parametrize("kw", [dict(temperature=0), dict(temperature=1.0, top_k=0, top_p=1.0, seed=5),
                                dict(temperature=0.9, top_k=20, top_p=0.9, repetition_penalty=1.3, seed=11)])
def test_cache_and_no_cache_give_the_same_tokens_past_block_size(model, tokenizer, kw):
    cached = run(model, tokenizer, max_new_tokens=3 * BLOCK, stop_at_separator=False, **kw)
    uncached = run(model, tokenizer, max_new_tokens=3 * BLOCK, stop_at_separator=False, use_cache=False, **kw)
    assert len(cached[1]) == 3 * BLOCK  # the window shifted several times
    assert cached[1] == uncached[1]
    assert cached[0] == uncached[0]


def test_cache_and_no_cache_agree_with_rope(tokenizer):
    model = tiny_model(tokenizer.vocab_size, pos="rope", seed=1)
    kw = dict(max_new_tokens=2 * BLOCK, temperature=1.0, top_k=0, top_p=1.0, seed=3, stop_at_separator=False)
    assert run(model, tokenizer, **kw)[1] == run(model, tokenizer, use_cache=False, **kw)[1]


def test_sliding_window_matches_a_plain_nanogpt_loop(model, tokenizer):
    """context_shift=1 is nanoGPT: crop to the last block_size tokens, full forward, take the last logits."""
    from tinygrad import Tensor
    prompt = TEXT[:60]  # longer than block_size: every step slides the window (and the reference has one shape)
    ids = encode_prompt(tokenizer, prompt)  # the separator, then the text
    assert len(ids) > BLOCK
    reference = []
    for _ in range(8):
        window = (ids + reference)[-BLOCK:]
        logits = model(Tensor([window])).numpy()[0, -1]
        reference.append(int(np.argmax(logits)))
    for use_cache in (True, False):
        tokens = run(model, tokenizer, prompt, max_new_tokens=8, temperature=0, context_shift=1,
                     stop_at_separator=False, use_cache=use_cache)[1]
        assert tokens == reference


def test_same_seed_same_text_and_different_seeds_differ(model, tokenizer):
    kw = dict(max_new_tokens=24, temperature=1.0, stop_at_separator=False)
    a, b, c = (run(model, tokenizer, seed=s, **kw)[1] for s in (7, 7, 8))
    assert a == b
    assert a != c


def test_streamed_pieces_are_the_decoded_tokens(model, tokenizer):
    g = generate(model, tokenizer, "你好", max_new_tokens=40, temperature=1.0, seed=2, stop_at_separator=False)
    pieces = list(g)
    assert all(pieces)
    assert "".join(pieces) == tokenizer.decode(g.tokens)
    assert g.stats.new_tokens == 40 and g.stats.prompt_tokens == 1 + len(tokenizer.encode_ordinary("你好"))
    assert g.stats.stop_reason == "length" and g.stats.tokens_per_s > 0


def test_stop_string_ends_generation_and_is_not_printed(model, tokenizer):
    full, _, _ = run(model, tokenizer, max_new_tokens=30, temperature=0, stop_at_separator=False)
    stop = full[10:13]
    text, _, stats = run(model, tokenizer, max_new_tokens=30, temperature=0, stop=[stop, "never-there"],
                         stop_at_separator=False)
    assert text == full[:full.index(stop)]
    assert stats.stop_reason == "stop"


def test_separator_token_ends_a_document(model, tokenizer):
    """A model that produces the separator has finished its document (a name, for the names corpus)."""
    first = run(model, tokenizer, max_new_tokens=1, temperature=0, bos=False)[1][0]

    class SeparatorIsFirst:  # the same tokenizer, but the greedy first token is now the separator
        special_tokens, vocab_size = {SEPARATOR: first}, tokenizer.vocab_size
        encode_ordinary, decode_bytes = tokenizer.encode_ordinary, tokenizer.decode_bytes

    text, tokens, stats = run(model, SeparatorIsFirst(), max_new_tokens=10, temperature=0, bos=False)
    assert (text, tokens, stats.stop_reason) == ("", [], "separator")


def test_ids_the_tokenizer_does_not_have_are_never_sampled(tokenizer):
    wide = tiny_model(tokenizer.vocab_size + 40, seed=2)  # e.g. an embedding padded to a round size
    tokens = run(wide, tokenizer, max_new_tokens=30, temperature=2.0, top_k=0, top_p=1.0, seed=0,
                 stop_at_separator=False)[1]
    assert max(tokens) < tokenizer.vocab_size


def test_package_level_generate_works_even_after_the_module_is_imported(model, tokenizer):
    import tinygpt
    import tinygpt.generation  # noqa: F401  (the implementation module must not shadow the function)
    expected = run(model, tokenizer, "the", max_new_tokens=4, temperature=0)[0]
    assert "".join(tinygpt.generate(model, tokenizer, "the", max_new_tokens=4, temperature=0)) == expected


def test_empty_prompt_starts_from_the_separator(tokenizer):
    assert encode_prompt(tokenizer, "") == [tokenizer.special_tokens[SEPARATOR]]
    plain = Tokenizer.train("abc abc", vocab_size=257)
    assert encode_prompt(plain, "") == plain.encode_ordinary("\n")


def test_special_token_text_in_the_prompt_is_plain_unless_allowed(tokenizer):
    sep = tokenizer.special_tokens[SEPARATOR]
    assert sep not in encode_prompt(tokenizer, f"a{SEPARATOR}b", bos=False)
    assert sep in encode_prompt(tokenizer, f"a{SEPARATOR}b", allow_special=True, bos=False)


def test_text_prompts_start_a_new_document_when_the_vocabulary_has_the_separator(tokenizer, run_dir):
    sep, ma = tokenizer.special_tokens[SEPARATOR], tokenizer.encode_ordinary("ma")
    assert encode_prompt(tokenizer, "ma") == [sep, *ma]                # a docs-mode model completes a name
    assert encode_prompt(tokenizer, "ma", bos=False) == ma
    assert encode_prompt(tokenizer, [5, 6]) == [5, 6]                 # token ids are taken as given
    plain = Tokenizer.train("abc abc", vocab_size=257)
    assert encode_prompt(plain, "ab") == plain.encode_ordinary("ab")  # no separator, nothing to add
    assert run_starts_documents(run_dir) is None                      # config.json without data.docs


@pytest.mark.parametrize("kw, message", [
    (dict(top_p=0), "top-p must be in (0, 1] (1 = off), got 0"),
    (dict(temperature=-1), "temperature must be >= 0 (0 = greedy), got -1"),
    (dict(top_k=-2), "top-k must be an integer >= 0 (0 = off), got -2"),
    (dict(max_new_tokens=-1), "max-new-tokens must be an integer >= 0, got -1"),
    (dict(stop=[""]), "a stop string must not be empty"),
])
def test_bad_arguments_raise_one_line_before_generating(model, tokenizer, kw, message):
    with pytest.raises(TinyGPTError) as e:
        generate(model, tokenizer, "x", **kw)
    assert str(e.value) == message


# --- chat logic --------------------------------------------------------------------------------------------------
def test_chat_session_commands_and_history(model, tokenizer):
    from tinygpt.chat import ChatSession, ChatSettings
    session = ChatSession(model, tokenizer, ChatSettings(temperature=0, max_new_tokens=5, stop=()))
    sep = tokenizer.special_tokens[SEPARATOR]
    assert "".join(session.handle("/set temperature 0.5")) == "temperature = 0.5\n"
    assert "".join(session.handle("/set top-p 2")) == "error: top-p must be in (0, 1] (1 = off), got 2.0\n"
    assert "".join(session.handle("/set stop \\n")) == "stop = ('\\n',)\n"
    assert "".join(session.handle("/set colour red")).startswith("error: unknown setting 'colour'")
    assert "".join(session.handle("/nope")) == "error: unknown command /nope (try /help)\n"
    assert session.settings.top_p == ChatSettings().top_p
    "".join(session.handle("/set temperature 0"))
    "".join(session.handle("/set stop none"))
    reply = "".join(session.handle("the cat"))
    assert reply.endswith("\n")
    assert session.history[:1] == [sep] and len(session.history) == 1 + len(tokenizer.encode_ordinary("the cat")) + 5
    for _ in range(6):  # history never outgrows the context window
        "".join(session.handle("the dog"))
        assert len(session.history) <= BLOCK + 5
    "".join(session.handle("/reset"))
    assert session.history == [sep]
    assert "".join(session.handle("/quit")) == "bye\n" and session.finished


# --- CLI end to end ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, model, tokenizer):
    from tinygpt.checkpoint import save_checkpoint, save_run_config, save_tokenizer
    path = tmp_path_factory.mktemp("run")
    save_run_config(path, model.config, {}, {})
    save_tokenizer(path, tokenizer)
    save_checkpoint(path, model, {}, {"step": 0})
    return path


def cli(args, input=None):
    from cli.tinygpt_cli import tinygpt
    return CliRunner().invoke(tinygpt, [str(a) for a in args], input=input, catch_exceptions=False)


def main_exit(args, capsys):
    """Run the real entry point (errors become `error: ...` lines) and return (exit code, stdout, stderr)."""
    from cli.tinygpt_cli import main
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


def test_cli_generate_prints_prompt_then_continuation(run_dir, model, tokenizer):
    result = cli(["generate", run_dir, "--prompt", "the cat", "--max-new-tokens", 12, "--temperature", 0])
    assert result.exit_code == 0, result.output
    expected = run(model, tokenizer, "the cat", max_new_tokens=12, temperature=0)[0]
    assert result.stdout == "the cat" + expected + "\n"
    assert "tokens/s" in result.stderr
    no_echo = cli(["generate", run_dir, "--prompt", "the cat", "--max-new-tokens", 12, "--temperature", 0,
                   "--no-echo", "--no-cache"])
    assert no_echo.stdout == expected + "\n"


def test_cli_generate_seeded_samples_repeat(run_dir):
    args = ["generate", run_dir, "--prompt", "the", "--max-new-tokens", 10, "--seed", 3, "--num-samples", 2]
    first, second = cli(args), cli(args)
    assert first.exit_code == 0 and first.stdout == second.stdout
    assert first.stdout.count("\n---\n") == 1


def test_cli_generate_warns_about_special_text(run_dir):
    result = cli(["generate", run_dir, "--prompt", f"a{SEPARATOR}", "--max-new-tokens", 2])
    assert result.exit_code == 0
    assert "read as plain text; pass --allow-special" in result.stderr


def test_cli_chat_with_piped_input(run_dir):
    result = cli(["chat", run_dir, "--temperature", 0, "--max-new-tokens", 6],
                 input="the cat\n/set temperature 0.7\n/settings\n/reset\n/quit\nnot read\n")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "> the cat"  # piped input is echoed, so the output reads as a transcript
    assert "temperature = 0.7" in lines and "conversation cleared" in lines and lines[-2:] == ["> /quit", "bye"]
    assert "not read" not in result.stdout


@pytest.mark.parametrize("args, message", [
    (["--top-p", "1.5"], "error: top-p must be in (0, 1] (1 = off), got 1.5"),
    (["--temperature", "-1"], "error: temperature must be >= 0 (0 = greedy), got -1.0"),
    (["--top-k", "-1"], "error: top-k must be an integer >= 0 (0 = off), got -1"),
])
def test_cli_bad_sampling_flags_are_one_line(run_dir, capsys, args, message):
    for command in ("generate", "chat"):
        code, _, err = main_exit([command, run_dir, *args], capsys)
        assert code == 1 and err.strip() == message


def test_cli_missing_or_half_written_run_dir_is_one_line(run_dir, tmp_path, capsys):
    code, _, err = main_exit(["generate", tmp_path / "nope", "--prompt", "x"], capsys)
    assert code == 1 and err.startswith("error: ") and "no such run directory" in err and err.count("\n") == 1
    half = tmp_path / "half"
    half.mkdir()
    (half / "config.json").write_bytes((run_dir / "config.json").read_bytes())
    (half / "tokenizer.json").write_bytes((run_dir / "tokenizer.json").read_bytes())
    (half / "model.safetensors").write_bytes((run_dir / "model.safetensors").read_bytes()[:100])
    code, _, err = main_exit(["generate", half, "--prompt", "x"], capsys)
    assert code == 1 and err.startswith("error: ") and "model.safetensors" in err and err.count("\n") == 1
