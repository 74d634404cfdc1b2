//! The session's start: the login checked on the primary, the greeting.

use super::*;

impl Relay<'_> {
    /// Checks the login on the primary (the database exists, the server
    /// takes the user and the client's parameters) and returns the
    /// client's greeting.
    pub(crate) async fn login(&mut self) -> Result<BytesMut, Error> {
        let mut attached = Box::pin(acquire::primary(
            self.shared,
            &mut self.topology,
            &mut self.pools,
            &self.login,
        ))
        .await?;
        // What the client did not ask for, it gets as the server's
        // defaults (what a fresh connection reported), never as an earlier
        // client of this pooled connection left it.
        let reported = attached.pool.reported();
        let mut notices = BytesMut::new();
        let mut params = Params::default();
        for (name, value) in &reported {
            params.set(name, value);
        }
        for (name, value) in self.login.asked.iter() {
            params.set(name, value);
        }
        if let Some(sql) = params.sync_query(&mut attached.conn.params) {
            // The values as the server spells them (`utf8` is `UTF8`): a
            // SET that changes nothing reports nothing, so they are read.
            let mut sql = String::from_utf8_lossy(&sql[..sql.len() - 1]).into_owned();
            sql.push_str("SELECT ");
            for (i, name) in crate::params::TRACKED.iter().enumerate() {
                if i > 0 {
                    sql.push(',');
                }
                sql.push_str(&format!("current_setting('{name}')"));
            }
            let answer = Box::pin(hidden::run_row(
                &mut attached.conn,
                &sql,
                self.shared.config.connect_timeout,
            ))
            .await?;
            // What PostgreSQL would have told the client at its startup
            // (a name too long truncated, say): the greeting carries it.
            notices = answer.notices;
            for (name, value) in crate::params::TRACKED.iter().zip(answer.row) {
                if let Some(value) = value {
                    attached.conn.params.set(name, &value);
                }
            }
        }
        self.params = attached.conn.params.clone();
        if self.shared.config.pool_mode == PoolMode::Session && !self.shared.config.load_balance {
            // The session has exactly this one server connection for its
            // life (it ends with it): the client is told the server's own
            // pid and key, so pg_terminate_backend() of the pid it reads,
            // pg_stat_activity and notifications agree with it. Cancels
            // still come through the proxy.
            self.key = attached.conn.cancel.key;
            self.shared
                .set_cancel_target(self.key.0, self.key.1, attached.conn.cancel.clone());
            self.cancel_key = self.key;
        }
        let mut out = BytesMut::with_capacity(512);
        greeting(&mut out, &reported, &self.params, self.key, &notices);
        self.server = Some(attached);
        self.release_if_done().await?;
        Ok(out)
    }

    /// Tells the client why it cannot go on.
    pub(crate) async fn fatal(&mut self, e: &Error) {
        self.out.clear();
        messages::error(&mut self.out, "FATAL", e.sqlstate(), &e.client_message());
        let _ = self.client.write_all(&self.out).await;
    }

    /// Sends the client its greeting (authentication done, parameters,
    /// key, ReadyForQuery).
    pub(crate) async fn greet(&mut self, greeting: BytesMut) -> Result<(), Error> {
        self.client.write_all(&greeting).await.map_err(Error::Io)
    }
}
