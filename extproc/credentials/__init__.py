"""Cloud credentials the gateway signs with: AWS (SigV4 for Bedrock) and Google (access
tokens for Vertex), resolved by each cloud's own library and renewed in the background."""
