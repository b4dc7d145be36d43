#!/usr/bin/env python3
"""cryptofeed's Binance feed into cryptofeed's Kafka backend, pointed at the local simulator.

Started by `loadgen --compare-cryptofeed` (see scripts/compare_cryptofeed.sh); needs cryptofeed 3.x
(Python >= 3.13) and aiokafka. Everything stays on 127.0.0.1.

- Binance's addresses are class attributes of the feed: they are replaced with the simulator's
  WebSocket and REST base URLs before the feed is built. cryptofeed only accepts wss:// addresses,
  so the simulator serves TLS and its self-signed certificate is trusted through --ca (the
  ingester gets the same with TLS_CA_FILE).
- The simulator's /api/v3/exchangeInfo carries no `filters`; cryptofeed reads the first filter's
  tickSize, so a PRICE_FILTER is added to each symbol when it is missing (nothing else changes).
- cryptofeed's Kafka backend names a topic per symbol (`trades-BINANCE-BTC-USDT`); here every
  trade goes to the one topic given, as ours do. Its batching and queue settings stay cryptofeed's
  defaults unless --batch-interval is given.

The backend's counters are printed as one JSON line per second on stdout.
"""
import argparse
import json
import sys
import threading
import time


def std_symbol(s: str) -> str:
    # The simulator splits a symbol as <base><4-letter quote> (btcusdt -> BTC / USDT).
    s = s.strip().upper()
    return f"{s[:-4]}-{s[-4:]}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--ws', required=True, help='simulator WebSocket base URL, wss://127.0.0.1:PORT')
    ap.add_argument('--ca', default=None, help="PEM of the simulator's certificate, to trust")
    ap.add_argument('--rest', required=True, help='simulator REST base URL, http://127.0.0.1:PORT')
    ap.add_argument('--symbols', required=True, help='lower-case Binance symbols, comma-separated')
    ap.add_argument('--topic', required=True)
    ap.add_argument('--bootstrap', default='127.0.0.1:9092')
    ap.add_argument('--acks', default='all', help="producer acks (ours uses all; aiokafka's default is 1)")
    ap.add_argument('--batch-interval', type=float, default=None,
                    help="backend batch_interval in seconds (cryptofeed's default: 0.5)")
    a = ap.parse_args()

    import importlib.metadata

    from cryptofeed import FeedHandler
    from cryptofeed.backends.kafka import TradeKafka
    from cryptofeed.connection import RestEndpoint, Routes, WebsocketEndpoint
    from cryptofeed.defines import TRADES
    from cryptofeed.exchanges import Binance

    options = {}
    if a.ca:
        import ssl
        options['ssl'] = ssl.create_default_context(cafile=a.ca)
    Binance.websocket_endpoints = [WebsocketEndpoint(a.ws, options=options)]
    Binance.rest_endpoints = [RestEndpoint(a.rest, routes=Routes('/api/v3/exchangeInfo',
                                                                 l2book='/api/v3/depth?symbol={}&limit={}'))]
    parse = Binance._parse_symbol_data.__func__

    def parse_with_filters(cls, data):
        for s in data.get('symbols', []):
            s.setdefault('filters', [{'filterType': 'PRICE_FILTER', 'tickSize': '0.01'}])
        return parse(cls, data)

    Binance._parse_symbol_data = classmethod(parse_with_filters)

    topic = a.topic

    class OneTopic(TradeKafka):
        def topic(self, data: dict) -> str:
            return topic

    kwargs = dict(bootstrap_servers=a.bootstrap, client_id='cryptofeed-bench',
                  acks=a.acks if a.acks in ('all',) else int(a.acks))
    if a.batch_interval is not None:
        kwargs['batch_interval'] = a.batch_interval
    backend = OneTopic(**kwargs)

    version = importlib.metadata.version('cryptofeed')

    def report():
        while True:
            time.sleep(1.0)
            try:
                st = backend.stats
                print(json.dumps({'written': st.written, 'batches': st.batches, 'qsize': st.qsize,
                                  'dropped_overflow': st.dropped_overflow, 'dropped_failed': st.dropped_failed,
                                  'retries': st.retries, 'cryptofeed': version}), flush=True)
            except Exception as e:  # never let the reporter kill the feed
                print(json.dumps({'error': repr(e)}), flush=True)

    threading.Thread(target=report, name='stats', daemon=True).start()
    fh = FeedHandler(config={'uvloop': True, 'log': {'filename': '', 'level': 'INFO'}})
    fh.add_feed(Binance(symbols=[std_symbol(s) for s in a.symbols.split(',') if s.strip()],
                        channels=[TRADES], callbacks={TRADES: backend}))
    fh.run()
    return 0


if __name__ == '__main__':
    sys.exit(main())
