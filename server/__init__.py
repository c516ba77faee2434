"""The llmserve gRPC server: settings, wiring, error mapping and one servicer per service."""
