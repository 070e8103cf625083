//! Writing results to stdout when a reader may stop early (`eventfork … | head`).

use std::io::{self, Write};

/// Creates the folder `dir` (`what` names it in errors, e.g. `the sink folder`) and its
/// parents, if missing. A file in its place is named as such: `create_dir_all` says only
/// "File exists", as if the folder were there.
pub(crate) fn create_folder(dir: &std::path::Path, what: &str) -> anyhow::Result<()> {
    use anyhow::Context as _;
    if dir.exists() && !dir.is_dir() {
        anyhow::bail!("cannot use {} as {what}: it is a file", dir.display());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {what} {}", dir.display()))
}

/// Stdout, whose write errors say they are stdout's: "No space left on device" alone does
/// not say which file was full (`eventfork … > /dev/full`). The error keeps its kind, so
/// that a broken pipe is still told apart.
pub(crate) fn stdout() -> Named<io::StdoutLock<'static>> {
    Named(io::stdout().lock())
}

/// A writer whose errors name it as stdout.
pub(crate) struct Named<W: Write>(W);

impl<W: Write> Named<W> {
    fn named<T>(result: io::Result<T>) -> io::Result<T> {
        result.map_err(|error| {
            io::Error::new(error.kind(), format!("cannot write to stdout: {error}"))
        })
    }
}

impl<W: Write> Write for Named<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Self::named(self.0.write(buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        Self::named(self.0.flush())
    }
}

/// A writer that, once its reader has gone (a broken pipe), takes and drops everything
/// else, so that a command whose exit status is a verdict (invalid lines, lint errors)
/// still reads its whole input and says what it found, instead of ending as a success at
/// the first write that fails. Other write errors pass through.
pub(crate) struct Closable<W: Write> {
    inner: W,
    closed: bool,
}

impl<W: Write> Closable<W> {
    pub(crate) fn new(inner: W) -> Closable<W> {
        Closable {
            inner,
            closed: false,
        }
    }

    fn guard<T>(&mut self, result: io::Result<T>, done: T) -> io::Result<T> {
        match result {
            Err(error) if error.kind() == io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(done)
            }
            other => other,
        }
    }
}

impl<W: Write> Write for Closable<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.closed {
            return Ok(buf.len());
        }
        let result = self.inner.write(buf);
        self.guard(result, buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.closed {
            return Ok(());
        }
        let result = self.inner.flush();
        self.guard(result, ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Accepts `n` writes, then its reader is gone.
    struct Pipe(usize);

    impl Write for Pipe {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.0 == 0 {
                return Err(io::ErrorKind::BrokenPipe.into());
            }
            self.0 -= 1;
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_closed_pipe_takes_the_rest() {
        let mut out = Closable::new(Pipe(1));
        assert!(writeln!(out, "first").is_ok());
        assert!(writeln!(out, "second").is_ok());
        assert!(out.closed);
        assert!(out.flush().is_ok());
        // Other errors still fail.
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::ErrorKind::StorageFull.into())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        assert!(Closable::new(Full).write(b"x").is_err());
    }
}
