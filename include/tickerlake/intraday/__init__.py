"""The intraday half: 5-minute bars on Kafka, drained exactly once into Delta, scored near real time.

- `schema`: the message contract (`bar_5m.v1.schema.json`) and its Python reading, which the
  Spark drain mirrors rule for rule;
- `replay`: Stooq's real 5-minute bars (Europe/Warsaw clock -> UTC) or synthetic ones onto the
  topic through Kafka's idempotent producer;
- `drain`: Spark Structured Streaming (Trigger.AvailableNow + checkpoint) into bronze, quarantine
  and silver, each Delta write carrying the transaction id (app id, batch id);
- `scoring`: intraday features with the latest daily features from the Feast online store,
  scored by the champion into gold.predictions_intraday;
- `schedule`: which 5-minute runs fall in a session (XNYS calendar, early closes included);
- `bench`: drain throughput beside a plain confluent-kafka consumer.

Heavy imports (pyspark, confluent_kafka, feast) stay inside functions: the DAG imports this package.
"""
