// ECDSA verification of a signature against a raw (uncompressed) public point.
//
// Why this exists: issuing an X.509-SVID starts by verifying the CSR's
// self-signature with the CSR's public key, and every CSR carries a fresh key.
// Through Node's crypto API each such key must first become a KeyObject, and on
// Node 20 / OpenSSL 3 that costs more than the verification itself: a new
// EC_GROUP per import (and a second one when the key is exported to the
// provider on first use), plus, for JWK imports, a full n*Q public key check
// that is redundant on cofactor-1 curves. Measured on one core: JWK import +
// crypto.verify ~140 us, this ~55 us.
//
// Nothing here is hand-written cryptography. It calls OpenSSL's own
// EC_POINT_oct2point (which rejects points not on the curve), EVP_Digest and
// ECDSA_verify (which rejects non-canonical DER signatures) on the libcrypto
// that the Node binary already links and exports, with one reusable EC_KEY per
// curve and per thread instead of one group per call. P-256 and P-384 have
// cofactor 1, so a point on the curve is in the prime-order group: the same
// guarantee an SPKI import gives.
#include <napi.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>

#include <string>

namespace {

// One EC_KEY per curve for this Node environment (main thread or a worker),
// reused for every call: only its public point changes; and the digests,
// fetched once (OpenSSL 3 otherwise looks each one up in its provider tables
// on every EVP_Digest call). Freed with the env.
struct Keys {
  EC_KEY* p256 = nullptr;
  EC_KEY* p384 = nullptr;
  EVP_MD* md[3] = {nullptr, nullptr, nullptr};  // SHA256, SHA384, SHA512
  ~Keys() {
    EC_KEY_free(p256);
    EC_KEY_free(p384);
    for (EVP_MD* m : md) EVP_MD_free(m);
  }
};

Keys& KeysFor(Napi::Env env) {
  Keys* k = env.GetInstanceData<Keys>();
  if (!k) {
    k = new Keys();
    env.SetInstanceData<Keys>(k);
  }
  return *k;
}

bool ThrowType(Napi::Env env, const char* msg) {
  Napi::TypeError::New(env, msg).ThrowAsJavaScriptException();
  return false;
}

// verify(curve: 'P-256' | 'P-384', point: Buffer, hash: 'sha256'|'sha384'|'sha512',
//        data: Buffer, signatureDer: Buffer): boolean
// Throws TypeError on bad arguments, RangeError when the point is not a valid
// uncompressed point on the curve.
Napi::Value Verify(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 5 || !info[0].IsString() || !info[1].IsBuffer() || !info[2].IsString() || !info[3].IsBuffer() ||
      !info[4].IsBuffer()) {
    ThrowType(env, "verify(curve, point, hash, data, signature): curve and hash are strings, the rest Buffers");
    return env.Undefined();
  }
  const std::string curve = info[0].As<Napi::String>().Utf8Value();
  const std::string hash = info[2].As<Napi::String>().Utf8Value();
  auto point = info[1].As<Napi::Buffer<uint8_t>>();
  auto data = info[3].As<Napi::Buffer<uint8_t>>();
  auto sig = info[4].As<Napi::Buffer<uint8_t>>();

  Keys& keys = KeysFor(env);
  EC_KEY** slot;
  int nid;
  size_t coord;
  if (curve == "P-256") {
    slot = &keys.p256, nid = NID_X9_62_prime256v1, coord = 32;
  } else if (curve == "P-384") {
    slot = &keys.p384, nid = NID_secp384r1, coord = 48;
  } else {
    ThrowType(env, "curve must be P-256 or P-384");
    return env.Undefined();
  }
  const int mdIndex = hash == "sha256" ? 0 : hash == "sha384" ? 1 : hash == "sha512" ? 2 : -1;
  if (mdIndex < 0) {
    ThrowType(env, "hash must be sha256, sha384 or sha512");
    return env.Undefined();
  }
  static const char* const kDigestNames[3] = {"SHA256", "SHA384", "SHA512"};
  EVP_MD*& md = keys.md[mdIndex];
  if (!md) md = EVP_MD_fetch(nullptr, kDigestNames[mdIndex], nullptr);
  if (!md) {
    ERR_clear_error();
    Napi::Error::New(env, "EVP_MD_fetch failed").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  // Uncompressed only (0x04 || X || Y): the caller decides what it accepts, and
  // a fixed length keeps the point at infinity (a single 0x00) out.
  if (point.Length() != 1 + 2 * coord || point.Data()[0] != 0x04) {
    Napi::RangeError::New(env, "point must be an uncompressed point (0x04 || X || Y) of the curve's size").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (sig.Length() > 256) return Napi::Boolean::New(env, false);  // no valid ECDSA DER signature is this long

  if (!*slot) {
    *slot = EC_KEY_new_by_curve_name(nid);
    if (!*slot) {
      Napi::Error::New(env, "EC_KEY_new_by_curve_name failed").ThrowAsJavaScriptException();
      return env.Undefined();
    }
  }
  EC_KEY* key = *slot;
  const EC_GROUP* group = EC_KEY_get0_group(key);
  EC_POINT* pub = EC_POINT_new(group);
  const bool pointOk = pub && EC_POINT_oct2point(group, pub, point.Data(), point.Length(), nullptr) == 1 &&
                       EC_KEY_set_public_key(key, pub) == 1;
  EC_POINT_free(pub);
  if (!pointOk) {
    ERR_clear_error();
    Napi::RangeError::New(env, "point is not on the curve").ThrowAsJavaScriptException();
    return env.Undefined();
  }

  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digestLen = 0;
  if (EVP_Digest(data.Data(), data.Length(), digest, &digestLen, md, nullptr) != 1) {
    ERR_clear_error();
    Napi::Error::New(env, "EVP_Digest failed").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  // 1: valid; 0: invalid; -1: malformed signature (not strict DER, trailing data) or error.
  const int r = ECDSA_verify(0, digest, static_cast<int>(digestLen), sig.Data(), static_cast<int>(sig.Length()), key);
  if (r != 1) ERR_clear_error();
  return Napi::Boolean::New(env, r == 1);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("verify", Napi::Function::New(env, Verify, "verify"));
  return exports;
}

}  // namespace

NODE_API_MODULE(ecdsa_verify, Init)
