"""QBO throttling: 500 requests and 40 batches per realm per minute, at most 10 in flight; the XML 429."""

from __future__ import annotations

import httpx

from cwqbo.sandbox.quickbooks.core import SimulatorCore
from cwqbo.sandbox.quickbooks.values import _iso_millis

RATE_LIMIT_PER_MIN = 500
BATCH_LIMIT_PER_MIN = 40
MAX_IN_FLIGHT = 10


class ThrottleMixin(SimulatorCore):
    """The rate limits of `QBOSimulator`, over its request windows."""

    def _throttled(self, tid: str) -> httpx.Response:
        xml = (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><IntuitResponse xmlns="http://schema.intuit.com/'
               f'finance/v3" time="{_iso_millis(self.clock.now())}"><Fault type="SERVICE"><Error code="3001" element="">'
               "<Message>message=ThrottleExceeded; errorCode=003001; statusCode=429</Message><Detail>The request limit "
               "was reached.  Try again later</Detail></Error></Fault></IntuitResponse>")
        return httpx.Response(429, content=xml.encode(), headers={"Content-Type": "application/xml", "intuit_tid": tid,
                                                                  "Intuit-Tid": tid})

    def _rate_limited(self, is_batch: bool, in_flight: int) -> bool:
        now = self.clock.now()
        with self._lock:
            for window in (self._requests, self._batches):
                while window and window[0] <= now - 60:
                    window.popleft()
            if in_flight > MAX_IN_FLIGHT or len(self._requests) >= RATE_LIMIT_PER_MIN:
                return True
            if is_batch and len(self._batches) >= BATCH_LIMIT_PER_MIN:
                return True
            self._requests.append(now)
            if is_batch:
                self._batches.append(now)
            return False
