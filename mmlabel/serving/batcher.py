"""Dynamic batching: posts of requests that arrive together are tagged in one model call.

The first waiting request opens a collection window of `window_ms`; requests arriving within it join the batch
until it holds `max_batch` posts; the batch then runs on the one model thread while the next one collects. With
`max_batch = 1` every request runs alone (the one-at-a-time baseline of docs/serving.md).
"""
import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from mmlabel.log import logger


class BatchFailed(Exception):
    """The model call of the batch a request joined raised `error`; the batcher logged it with its traceback."""

    def __init__(self, error: BaseException):
        super().__init__(f"{type(error).__name__}: {error}")
        self.error = error


class Batcher:
    """Collects posts from concurrent requests into batches for `predict(posts) -> results` (one result per post,
    in order), run one batch at a time on a thread of its own so that the server keeps accepting requests."""

    def __init__(self, predict: Callable[[list], list], max_batch: int = 32, window_ms: float = 5.0):
        if max_batch < 1 or window_ms < 0:
            raise ValueError("max_batch must be at least 1 and window_ms at least 0")
        self.predict = predict
        self.max_batch = max_batch
        self.window = window_ms / 1000
        self.queue: asyncio.Queue | None = None
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mmlabel-model")
        self.task: asyncio.Task | None = None
        self.carried = None  # a request that did not fit in the last batch
        self.batches = 0  # model calls so far, and the posts they held: what GET /model reports
        self.posts = 0

    async def start(self) -> None:
        self.queue = asyncio.Queue()
        self.task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
        self.executor.shutdown(wait=False, cancel_futures=True)

    async def submit(self, posts: list) -> list:
        """The results for `posts` (one request's), once the batch they joined has run; a `BatchFailed` where the
        model call raised."""
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((posts, future))
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            waiting = [self.carried or await self.queue.get()]
            self.carried = None
            await self._collect(waiting, loop.time() + self.window)
            posts = [post for request_posts, _ in waiting for post in request_posts]
            try:
                results = await loop.run_in_executor(self.executor, self.predict, posts)
            except Exception as error:  # logged once; every request of the batch gets the failure; the loop goes on
                logger.error("a batch of %d posts from %d requests failed: %s: %s", len(posts), len(waiting),
                             type(error).__name__, error, exc_info=error)
                for _, future in waiting:
                    if not future.done():
                        future.set_exception(BatchFailed(error))
                continue
            self.batches, self.posts = self.batches + 1, self.posts + len(posts)
            start = 0
            for request_posts, future in waiting:
                if not future.done():  # a client that went away leaves a cancelled future
                    future.set_result(results[start:start + len(request_posts)])
                start += len(request_posts)

    async def _collect(self, waiting: list, deadline: float) -> None:
        """Add the requests arriving before `deadline` to `waiting` while the batch has room."""
        loop = asyncio.get_running_loop()
        count = len(waiting[0][0])
        while count < self.max_batch:
            if self.queue.empty():
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return
                try:
                    item = await asyncio.wait_for(self.queue.get(), remaining)
                except TimeoutError:
                    return
            else:
                item = self.queue.get_nowait()
            if count + len(item[0]) > self.max_batch:
                self.carried = item  # it opens the next batch, ahead of the requests that came after it
                return
            waiting.append(item)
            count += len(item[0])
