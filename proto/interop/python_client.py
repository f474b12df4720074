"""A client for admq written in another language, from admq.proto alone.

Run by proto/interop.test.ts: stubs are generated with grpc_tools.protoc into a temporary
directory given as the first argument. It produces three messages, consumes them back with
a subscription, acknowledges them, and prints what it saw as JSON.
"""
import json
import queue
import sys

sys.path.insert(0, sys.argv[1])
import grpc  # noqa: E402
import admq_pb2 as pb  # noqa: E402
import admq_pb2_grpc as rpc  # noqa: E402

address, topic = sys.argv[2], sys.argv[3]
channel = grpc.insecure_channel(address)
stub = rpc.BrokerStub(channel)
result = {"partitions": stub.GetTopicMetadata(pb.TopicMetadataRequest(topic=topic)).partitions}

# Produce: open, one batch of three, read the receipt.
requests = queue.Queue()
requests.put(pb.ProduceRequest(open=pb.ProducerOpen(topic=topic, producer_name="python-1")))
responses = stub.Produce(iter(requests.get, None))
opened = next(responses)
result["opened"] = {"producer": opened.opened.producer_name, "last_sequence_id": opened.opened.last_sequence_id}
batch = pb.SendBatch(request_id=7, messages=[
    pb.OutboundMessage(sequence_id=i, payload=f"py{i}".encode(), key=f"k{i}", has_key=True, properties={"lang": "python"})
    for i in range(3)
])
requests.put(pb.ProduceRequest(send=batch))
receipt = next(responses).receipt
result["receipt"] = {"request_id": receipt.request_id, "offsets": [r.offset for r in receipt.results]}
requests.put(None)

# Consume: subscribe from the earliest entry, grant three permits, ack what arrives.
creqs = queue.Queue()
creqs.put(pb.ConsumeRequest(subscribe=pb.Subscribe(
    topic=topic, subscription="python-sub", type=pb.SHARED, initial_position=pb.EARLIEST)))
cresp = stub.Consume(iter(creqs.get, None))
subscribed = next(cresp)
result["subscribed"] = subscribed.subscribed.subscription
creqs.put(pb.ConsumeRequest(flow=pb.Flow(permits=3)))
seen = []
for response in cresp:
    if response.WhichOneof("response") != "messages":
        continue
    for m in response.messages.messages:
        seen.append({"offset": m.offset, "payload": m.payload.decode(), "key": m.key if m.has_key else None,
                     "properties": dict(m.properties), "origin_region": m.origin_region, "hlc": str(m.hlc),
                     "sequence_id": m.sequence_id, "producer": m.producer_name})
    creqs.put(pb.ConsumeRequest(ack=pb.Ack(type=pb.INDIVIDUAL, offsets=[m.offset for m in response.messages.messages])))
    if len(seen) >= 3:
        break
creqs.put(None)
result["consumed"] = seen
# End both calls and the channel before printing: no RPC may outlive the script (a live
# stream can hold the interpreter's exit on a busy machine).
cresp.cancel()
responses.cancel()
channel.close()
print(json.dumps(result), flush=True)
