print("ecp-bench")
