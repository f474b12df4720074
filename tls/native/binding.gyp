{
  "targets": [
    {
      "target_name": "admq_tls_native",
      "sources": ["sm4-gcm.c"],
      "cflags": ["-O3", "-std=c11", "-Wall", "-Wextra"]
    }
  ]
}
