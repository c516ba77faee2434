"""Context fitting through the real chat template: oldest exchanges go first, the
system prompt and newest message stay, and a newest message that cannot fit is refused."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from domain.chat.cache import RedisHistoryCache
from domain.chat.context import fit_context
from models.errors import InvalidArgument
from models.generation import ChatTurn, chat_prompt_ids

SYSTEM = ChatTurn("system", "You are terse.")


@pytest.fixture(scope="module")
def count(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    return lambda turns: len(chat_prompt_ids(tokenizer, turns))


def _history(n: int) -> list[ChatTurn]:
    turns = []
    for i in range(n):
        turns += [ChatTurn("user", f"question {i} " + "lorem " * 20), ChatTurn("assistant", f"answer {i} " * 10)]
    return turns


def _fit(count, history, newest, window, max_new_tokens=None):
    return fit_context(SYSTEM, history, ChatTurn("user", newest), count=count, context_window=window,
                       max_new_tokens=max_new_tokens, default_max_new_tokens=512, min_reply_tokens=32,
                       field="user_message")


def test_everything_kept_when_it_fits(count):
    fitted = _fit(count, _history(2), "hi", 4096)
    assert fitted.dropped == 0 and len(fitted.turns) == 6
    assert fitted.max_new_tokens == 512 and fitted.prompt_tokens == count(fitted.turns)


def test_oldest_exchanges_dropped_first_and_whole(count):
    history = _history(10)
    fitted = _fit(count, history, "the newest", 400, max_new_tokens=50)
    assert fitted.turns[0] == SYSTEM and fitted.turns[-1] == ChatTurn("user", "the newest")
    kept = fitted.turns[1:-1]
    assert 0 < len(kept) < len(history) and kept == history[-len(kept):]
    assert kept[0].role == "user" and fitted.dropped == len(history) - len(kept)
    assert fitted.prompt_tokens + 50 <= 400
    # Keeping one more exchange would not have fit: the fewest turns were dropped.
    assert count([SYSTEM, *history[fitted.dropped - 2:], ChatTurn("user", "the newest")]) + 50 > 400
    # Without a requested limit, the default is lowered to the room left.
    free = _fit(count, history, "the newest", 400)
    assert free.prompt_tokens + free.max_new_tokens == 400


def test_newest_message_that_cannot_fit_is_invalid_argument(count):
    with pytest.raises(InvalidArgument) as err:
        _fit(count, _history(1), "word " * 500, 300)
    assert err.value.field == "user_message"
    with pytest.raises(InvalidArgument):  # fits alone, but not with the requested reply room
        _fit(count, [], "short", 100, max_new_tokens=90)


async def test_redis_cache_that_is_down_is_a_miss_not_an_error():
    from datetime import datetime, timezone

    cache = RedisHistoryCache("redis://127.0.0.1:1/0", ttl_s=60)  # nothing listens on port 1
    now = datetime.now(timezone.utc)
    await cache.put("s", now, [])
    assert await cache.get("s", now) is None
    await cache.drop("s")
    await cache.close()
