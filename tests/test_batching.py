"""batched(): the one accumulate / flush-when-full / flush-the-tail loop of photos, film and evaluation."""

import pytest

from keras_colorize.inference import batching


@pytest.mark.parametrize("count, size, sizes", [
    (6, 3, [3, 3]),        # exact batches, no empty tail
    (7, 3, [3, 3, 1]),     # a tail
    (2, 5, [2]),           # fewer items than one batch
    (0, 4, []),            # empty input: nothing, not one empty batch
    (3, 1, [1, 1, 1]),
])
def test_batches_keep_order_and_flush_the_tail(count, size, sizes):
    batches = list(batching.batched(iter(range(count)), size))
    assert [len(b) for b in batches] == sizes
    assert [x for b in batches for x in b] == list(range(count))
    assert all(isinstance(b, list) for b in batches)


def test_items_are_read_only_as_a_batch_fills():
    pulled = []

    def source():
        for i in range(10):
            pulled.append(i)
            yield i

    batches = batching.batched(source(), 4)
    assert next(batches) == [0, 1, 2, 3] and pulled == [0, 1, 2, 3]  # nothing read ahead of the batch
    assert next(batches) == [4, 5, 6, 7] and len(pulled) == 8


@pytest.mark.parametrize("size", [0, -2, 2.0, True, None])
def test_bad_size_names_the_argument_and_value(size):
    with pytest.raises(ValueError, match=rf"size must be a positive int, got {size!r}"):
        next(batching.batched([1, 2], size))
