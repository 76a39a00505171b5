package relay.transport;

import java.io.File;
import java.io.IOException;
import java.security.GeneralSecurityException;
import java.security.KeyStore;
import java.security.SecureRandom;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;

/** TLS 1.3 with this node's key and certificate from a key store, and the certificates it accepts from a trust store. */
public final class TlsContext {
    private TlsContext() {}

    /** A context over the two stores (PKCS12 or JKS, the type read from the file); a store that cannot be read is named. */
    public static SSLContext of(String keyStore, String keyStorePassword, String trustStore, String trustStorePassword)
            throws IOException, GeneralSecurityException {
        KeyManagerFactory keys = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
        keys.init(store(keyStore, keyStorePassword), keyStorePassword.toCharArray());
        TrustManagerFactory trust = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        trust.init(store(trustStore, trustStorePassword));
        SSLContext context = SSLContext.getInstance("TLSv1.3");
        context.init(keys.getKeyManagers(), trust.getTrustManagers(), new SecureRandom());
        return context;
    }

    private static KeyStore store(String file, String password) throws IOException {
        try {
            return KeyStore.getInstance(new File(file), password.toCharArray());
        } catch (IOException | GeneralSecurityException e) {
            throw new IOException("cannot read the store " + file + ": " + e.getMessage(), e);
        }
    }
}
