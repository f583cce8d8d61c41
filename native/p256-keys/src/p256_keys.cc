// Batches of fresh EC P-256 key pairs, each signing a message built around its
// own public point (a CSR's certificationRequestInfo), on a libuv pool thread.
//
// Why this exists: the agent makes one key pair and one CSR per workload SVID,
// and a fresh node syncing 10,000 entries makes 10,000 of each. Through Node's
// crypto API every key is a KeyObject: generateKeyPair schedules one pool job
// per key, the first export of each fresh key converts OpenSSL 3's provider key
// to a legacy EC_KEY (building a new EC_GROUP) on the main thread (~30-45 us a
// key measured on this machine kind, more than the key generation itself), and
// crypto.sign schedules a second pool job. Measured here for 10,000 keys, that
// was about 1.2 CPU-seconds, half of it on the agent's main thread. This does
// the same work with one EC_KEY reused for a whole batch: ~30 us a key, all off
// the main thread.
//
// Nothing here is hand-written cryptography. It calls OpenSSL's own
// EC_KEY_generate_key (private scalar drawn from OpenSSL's DRBG, uniformly in
// [1, n-1]), EC_POINT_point2oct, SHA256 and ECDSA_sign (nonce from OpenSSL) on
// the libcrypto that the Node binary already links and exports. Private scalars
// are wiped from this addon's memory (OPENSSL_cleanse, and EC_KEY_free clears
// the key) once they are copied into the returned Buffer.
#include <napi.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/obj_mac.h>
#include <openssl/sha.h>

#include <cstring>
#include <string>
#include <vector>

namespace {

constexpr size_t kMaxCount = 10000;
constexpr size_t kMaxFix = 4096;
constexpr size_t kScalar = 32;  // P-256 private scalar
constexpr size_t kCoords = 64;  // X || Y

class GenerateWorker : public Napi::AsyncWorker {
 public:
  GenerateWorker(Napi::Env env, size_t count, std::vector<uint8_t> prefix, std::vector<uint8_t> suffix)
      : Napi::AsyncWorker(env, "tessera.p256-keys"),
        deferred_(Napi::Promise::Deferred::New(env)),
        count_(count),
        prefix_(std::move(prefix)),
        suffix_(std::move(suffix)) {}

  ~GenerateWorker() override { OPENSSL_cleanse(priv_.data(), priv_.size()); }

  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  void Execute() override {
    EC_KEY* key = EC_KEY_new_by_curve_name(NID_X9_62_prime256v1);
    if (!key) return Fail("EC_KEY_new_by_curve_name");
    const EC_GROUP* group = EC_KEY_get0_group(key);
    priv_.resize(count_ * kScalar);
    pub_.resize(count_ * kCoords);
    sigs_.resize(count_);
    std::vector<uint8_t> msg(prefix_.size() + kCoords + suffix_.size());
    std::memcpy(msg.data(), prefix_.data(), prefix_.size());
    std::memcpy(msg.data() + prefix_.size() + kCoords, suffix_.data(), suffix_.size());
    const unsigned int maxSig = static_cast<unsigned int>(ECDSA_size(key));
    unsigned char point[1 + kCoords];
    unsigned char digest[SHA256_DIGEST_LENGTH];
    const char* failed = nullptr;
    for (size_t i = 0; i < count_ && !failed; i++) {
      // Reusing the EC_KEY: generate_key replaces its private scalar and public point.
      if (EC_KEY_generate_key(key) != 1) {
        failed = "EC_KEY_generate_key";
      } else if (BN_bn2binpad(EC_KEY_get0_private_key(key), &priv_[i * kScalar], kScalar) != static_cast<int>(kScalar)) {
        failed = "BN_bn2binpad";
      } else if (EC_POINT_point2oct(group, EC_KEY_get0_public_key(key), POINT_CONVERSION_UNCOMPRESSED, point, sizeof point,
                                    nullptr) != sizeof point) {
        failed = "EC_POINT_point2oct";
      } else {
        std::memcpy(&pub_[i * kCoords], point + 1, kCoords);
        std::memcpy(msg.data() + prefix_.size(), point + 1, kCoords);
        SHA256(msg.data(), msg.size(), digest);
        std::vector<uint8_t>& sig = sigs_[i];
        sig.resize(maxSig);
        unsigned int sigLen = maxSig;
        if (ECDSA_sign(0, digest, sizeof digest, sig.data(), &sigLen, key) != 1) failed = "ECDSA_sign";
        sig.resize(sigLen);
      }
    }
    EC_KEY_free(key);  // clears the last private scalar
    if (failed) Fail(failed);
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::Object out = Napi::Object::New(env);
    out.Set("privateKeys", Napi::Buffer<uint8_t>::Copy(env, priv_.data(), priv_.size()));
    out.Set("publicKeys", Napi::Buffer<uint8_t>::Copy(env, pub_.data(), pub_.size()));
    Napi::Array sigs = Napi::Array::New(env, count_);
    for (size_t i = 0; i < count_; i++) sigs.Set(static_cast<uint32_t>(i), Napi::Buffer<uint8_t>::Copy(env, sigs_[i].data(), sigs_[i].size()));
    out.Set("signatures", sigs);
    OPENSSL_cleanse(priv_.data(), priv_.size());
    deferred_.Resolve(out);
  }

  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  void Fail(const char* what) {
    ERR_clear_error();
    OPENSSL_cleanse(priv_.data(), priv_.size());
    SetError(std::string("p256-keys: ") + what + " failed");
  }

  Napi::Promise::Deferred deferred_;
  const size_t count_;
  const std::vector<uint8_t> prefix_;
  const std::vector<uint8_t> suffix_;
  std::vector<uint8_t> priv_;
  std::vector<uint8_t> pub_;
  std::vector<std::vector<uint8_t>> sigs_;
};

// generateSigned(count: number, prefix: Buffer, suffix: Buffer): Promise<SignedKeys>
Napi::Value GenerateSigned(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 3 || !info[0].IsNumber() || !info[1].IsBuffer() || !info[2].IsBuffer()) {
    Napi::TypeError::New(env, "generateSigned(count, prefix, suffix): count is a number, prefix and suffix Buffers").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const double n = info[0].As<Napi::Number>().DoubleValue();
  auto prefix = info[1].As<Napi::Buffer<uint8_t>>();
  auto suffix = info[2].As<Napi::Buffer<uint8_t>>();
  if (!(n >= 1 && n <= static_cast<double>(kMaxCount)) || n != static_cast<double>(static_cast<size_t>(n))) {
    Napi::TypeError::New(env, "count must be an integer from 1 to 10000").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (prefix.Length() > kMaxFix || suffix.Length() > kMaxFix) {
    Napi::TypeError::New(env, "prefix and suffix must be at most 4096 bytes each").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  auto* worker = new GenerateWorker(env, static_cast<size_t>(n), std::vector<uint8_t>(prefix.Data(), prefix.Data() + prefix.Length()),
                                    std::vector<uint8_t>(suffix.Data(), suffix.Data() + suffix.Length()));
  Napi::Promise promise = worker->Promise();
  worker->Queue();  // owned and deleted by N-API once done
  return promise;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("generateSigned", Napi::Function::New(env, GenerateSigned, "generateSigned"));
  return exports;
}

}  // namespace

NODE_API_MODULE(p256_keys, Init)
