"""Long posts in overlapping windows: a post whose sub-words exceed the model's `data.max_tokens` is tagged window by
window, each word taking its tag from the window where it is most central (`mmlabel.tagger.Tagger`), so that every
word gets a tag, as transformers' token-classification pipeline does with `stride`."""


def word_windows(n_words: int, fitting, overlap: float = 0.5) -> list[tuple[int, int]]:
    """The (start, end) word windows of a post of `n_words` words too long for the model: each window as many
    words from its start as reach the model (`fitting(start)`, at least one), the next starting `overlap` of the
    window's words before its end (at least one word later), up to the last word. As transformers' token
    classification pipeline does with `stride`, in words: a word is never split between windows."""
    windows, start = [], 0
    while True:
        end = min(n_words, start + max(1, fitting(start)))
        windows.append((start, end))
        if end >= n_words:
            return windows
        start = max(start + 1, end - int((end - start) * overlap))


def most_central(windows: list[tuple[int, int]], n_words: int) -> list[int]:
    """For each word, the window whose tag it takes: the one in which it has the most words of context on its
    nearer cut side (the post's own start and end are no cut: the words there lack nothing); the first on a tie."""
    chosen = []
    for word in range(n_words):
        best, best_context = 0, -1
        for position, (start, end) in enumerate(windows):
            if start <= word < end:
                context = min(word - start if start > 0 else n_words, end - 1 - word if end < n_words else n_words)
                if context > best_context:
                    best, best_context = position, context
        chosen.append(best)
    return chosen
