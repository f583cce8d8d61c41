{
  "targets": [
    {
      "target_name": "ecdsa_verify",
      "sources": ["src/ecdsa_verify.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Wno-deprecated-declarations"]
    }
  ]
}
