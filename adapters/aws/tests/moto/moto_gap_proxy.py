"""A proxy in front of moto server that fills three gaps of moto 5.2.5.

The tests point the SDK's DynamoDB and SSM endpoints (AWS_ENDPOINT_URL_DYNAMODB,
AWS_ENDPOINT_URL_SSM) here; everything else goes to moto directly. Requests are
forwarded unchanged except for these gaps:

- DynamoDB: moto handles requests on several threads and its
  TransactWriteItems takes no lock, so two concurrent conditional writes can
  both succeed, where DynamoDB lets one win. The proxy forwards DynamoDB
  requests one at a time, which gives moto DynamoDB's isolation.
- SSM DescribeInstanceInformation: moto does not implement it and returns
  HTTP 500. The
  proxy answers it from moto's own EC2 state: a running instance is Online,
  any other state is ConnectionLost, and an instance moto does not know is
  absent, as in AWS.
- SSM SendCommand: moto adds every EC2 instance it knows to a command sent
  without Targets. The proxy adds a Targets entry that selects exactly the
  command's InstanceIds, so moto records the instances that were asked for.

It listens on 127.0.0.1 only and forwards only to a moto endpoint on 127.0.0.1.

Usage: python moto_gap_proxy.py PORT MOTO_ENDPOINT
"""

import json
import sys
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3

DESCRIBE_INSTANCE_INFORMATION = "AmazonSSM.DescribeInstanceInformation"
SEND_COMMAND = "AmazonSSM.SendCommand"
DYNAMODB_PREFIX = "DynamoDB_20120810."
HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


def main():
    port = int(sys.argv[1])
    moto = sys.argv[2].rstrip("/")
    if not moto.startswith("http://127.0.0.1:"):
        sys.exit(f"refusing to forward to {moto}: only http://127.0.0.1:PORT is allowed")
    ec2 = boto3.client("ec2", endpoint_url=moto, region_name="us-east-1")
    dynamodb_lock = threading.Lock()

    def describe_instance_information(body):
        request = json.loads(body or b"{}")
        wanted = set()
        for entry in request.get("Filters", []):
            if entry.get("Key") == "InstanceIds":
                wanted.update(entry.get("Values", []))
        for entry in request.get("InstanceInformationFilterList", []):
            if entry.get("key") == "InstanceIds":
                wanted.update(entry.get("valueSet", []))
        found = []
        for reservation in ec2.describe_instances()["Reservations"]:
            for instance in reservation["Instances"]:
                if wanted and instance["InstanceId"] not in wanted:
                    continue
                running = instance["State"]["Name"] == "running"
                found.append({
                    "InstanceId": instance["InstanceId"],
                    "PingStatus": "Online" if running else "ConnectionLost",
                    "PlatformType": "Linux",
                    "ResourceType": "EC2Instance",
                })
        return json.dumps({"InstanceInformationList": found}).encode()

    def pin_send_command_targets(body):
        request = json.loads(body or b"{}")
        if request.get("InstanceIds") and not request.get("Targets"):
            request["Targets"] = [{"Key": "instance-id", "Values": request["InstanceIds"]}]
        return json.dumps(request).encode()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            pass

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            target = self.headers.get("X-Amz-Target", "")
            if target == DESCRIBE_INSTANCE_INFORMATION:
                self.reply(200, {"Content-Type": "application/x-amz-json-1.1"},
                           describe_instance_information(body))
            elif target == SEND_COMMAND:
                self.forward(pin_send_command_targets(body))
            elif target.startswith(DYNAMODB_PREFIX):
                with dynamodb_lock:
                    self.forward(body)
            else:
                self.forward(body)

        def do_GET(self):
            self.forward(None)

        def forward(self, body):
            # The body may have changed, and moto checks no signature.
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
            request = urllib.request.Request(moto + self.path, data=body, headers=headers,
                                             method=self.command)
            try:
                with urllib.request.urlopen(request, timeout=60) as response:
                    self.reply(response.status, dict(response.headers), response.read())
            except urllib.error.HTTPError as error:
                self.reply(error.code, dict(error.headers), error.read())

        def reply(self, status, headers, payload):
            self.send_response(status)
            for key, value in headers.items():
                if key.lower() not in HOP_HEADERS:
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print(f"moto gap proxy on http://127.0.0.1:{port} -> {moto}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
