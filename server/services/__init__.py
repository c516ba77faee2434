"""One servicer per gRPC service: protobuf in, domain call, protobuf out."""
