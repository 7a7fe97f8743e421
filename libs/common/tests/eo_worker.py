"""A relay or a consumer as its own process, for the exactly-once test to kill with -9.

Usage: python eo_worker.py relay|consumer DSN BOOTSTRAP SCHEMA TOPIC
"""

from __future__ import annotations

import asyncio
import signal
import sys

from onegrid_common.broker import add_subscriber, create_broker
from onegrid_common.consumer import Incoming, RecordProcessor, Subscription, Transaction
from onegrid_common.outbox import OutboxRelay
from onegrid_common.producer import Producer
from onegrid_common.settings import DatabaseSettings, KafkaSettings
from onegrid_common.testing.helpers import Counted, pool_for

SERVICE = "scoring"


async def apply(tx: Transaction, msg: Incoming) -> None:
    assert isinstance(msg.payload, Counted)
    await tx.conn.execute(
        "INSERT INTO effects (key, seq) VALUES ($1, $2)", msg.payload.key, msg.payload.seq
    )


async def main(role: str, dsn: str, bootstrap: str, schema: str, topic: str) -> None:
    kafka = KafkaSettings(bootstrap_servers=bootstrap, enable_idempotence=False)
    producer = Producer(kafka, client_id=f"eo-{role}")
    await producer.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    if role == "relay":
        relay = OutboxRelay(db=DatabaseSettings(dsn=dsn), schema=schema, producer=producer)
        task = asyncio.create_task(relay.run())
        await stop.wait()
        await relay.stop()
        await task
    else:
        pool = await pool_for(dsn, schema)
        sub = Subscription(name=f"eo-{schema}", topics=(topic,), handlers={Counted.ce_type: apply})
        processor = RecordProcessor(service=SERVICE, subscription=sub, pool=pool, producer=producer)
        broker = create_broker(kafka, SERVICE)
        add_subscriber(broker, processor, kafka)
        await broker.start()
        print("consumer started", flush=True)
        await stop.wait()
        await broker.stop()
        await pool.close()
    await producer.stop()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:6]))
